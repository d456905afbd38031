import type { HttpManager, HttpRequest, HttpResult } from "../http";
import type { Acquired, Limiter } from "../limiter";

/** One answer sent under the limiter, with the last admission (for the limiter meta); null when none was needed. */
export interface AdmittedResult {
  readonly result: HttpResult;
  readonly admitted: Acquired | null;
}

/** Sends one request; every attempt, retries included, is admitted by the source's limiter first. */
export type AdmittedCall = (req: HttpRequest) => Promise<AdmittedResult>;

/**
 * The manager's `call` wrapped in the limiter hooks the fetcher gives declarative queries:
 * acquire before each attempt (a pool's credential with it), upstream rate headers observed, a
 * refused pool credential benched, the grant settled after it.
 * Keep the two in step, so a code query spends and reports quota exactly as a declared one.
 */
export function admittedCall(source: string, manager: HttpManager, limiter: Limiter): AdmittedCall {
  return async (req) => {
    let admitted: Acquired | null = null;
    const result = await manager.call(req, {
      beforeAttempt: async () => {
        admitted = await limiter.acquire(source);
        // A pooled source's attempt goes out with the credential it was admitted for.
        return admitted.credential;
      },
      onResponse: (status, headers) => limiter.observeUpstream(source, status, headers, admitted?.credential),
      onRefused: (status) => limiter.bench(source, admitted?.credential, status),
      afterAttempt: () => (admitted === null ? Promise.resolve() : limiter.settle(source, admitted)),
    });
    return { result, admitted };
  };
}
