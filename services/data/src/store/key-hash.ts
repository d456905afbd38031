/** FNV-1a (32 bit) of an entity's key JSON: every replica spreads entities over partitions alike, with no coordination. */
export function keyHash(keyJson: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < keyJson.length; i++) {
    h ^= keyJson.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}
