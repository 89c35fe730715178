/**
 * Worker thread that compiles one kernel unit with NVRTC (see {@link KernelCompiler.buildAll}).
 *
 * @module
 */

import type { CompileReply, CompileRequest } from "./compiler.ts";
import { CudaError } from "./errors.ts";
import { Nvrtc, NVRTC_SYMBOLS } from "./nvrtc.ts";

let nvrtc: Nvrtc | undefined;

// deno-lint-ignore no-explicit-any
const scope = self as any;

scope.onmessage = (e: MessageEvent<CompileRequest>) => {
  const req = e.data;
  let reply: CompileReply;
  try {
    if (!nvrtc || nvrtc.path !== req.nvrtcPath) {
      const lib = Deno.dlopen(req.nvrtcPath, NVRTC_SYMBOLS);
      nvrtc = new Nvrtc(lib.symbols, req.nvrtcPath);
    }
    try {
      const t0 = performance.now();
      const out = nvrtc.compile(req.source, req.name, req.headers, req.options);
      reply = { image: out.image, kind: out.kind, log: out.log, ms: performance.now() - t0 };
      scope.postMessage(reply, [out.image.buffer]);
      return;
    } catch (err) {
      reply = err instanceof CudaError ? { compileError: err.message } : { error: String(err) };
    }
  } catch (err) {
    reply = { error: String(err) };
  }
  scope.postMessage(reply);
};
