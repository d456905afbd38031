// Docker HEALTHCHECK of a Machina image: GET /healthz on the service's probe port, exit 0 on 200.
// Plain Node (the image has no curl). Port: argv[2], else MACHINA_HTTP_PORT.
import { get } from "node:http";

const port = Number(process.argv[2] ?? process.env.MACHINA_HTTP_PORT);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write("healthcheck: no probe port (pass it or set MACHINA_HTTP_PORT)\n");
  process.exit(2);
}
const req = get({ host: "127.0.0.1", port, path: "/healthz", timeout: 2000 }, (res) => {
  res.resume();
  process.exit(res.statusCode === 200 ? 0 : 1);
});
req.on("timeout", () => req.destroy(new Error("timed out")));
req.on("error", (err) => {
  process.stderr.write(`healthcheck: ${err.message}\n`);
  process.exit(1);
});
