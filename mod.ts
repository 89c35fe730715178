/**
 * patchwork: train patch by patch, stitch the gradients.
 *
 * Tensors with reverse-mode autodiff on a CPU or CUDA backend, neural-network modules and
 * optimisers. Importing this module picks the backend (`PATCHWORK_BACKEND` = auto, cpu or cuda).
 *
 * @example
 * ```ts
 * import { nn, randn, tensor } from "./mod.ts";
 * const net = new nn.MLP([1, 32, 1], { activation: "tanh", seed: 0 });
 * const y = net.forward(randn([8, 1]));
 * ```
 *
 * @module
 */

export * from "./src/tensor/mod.ts";
export {
  type BackendChoice,
  backendChoice,
  cpuBackend,
  cudaBackend,
  initBackend,
  useBackend,
} from "./src/backend/select.ts";
export * as nn from "./src/nn/mod.ts";
export * as optim from "./src/optim/mod.ts";
export * as local from "./src/local/mod.ts";
export * as solve from "./src/solve/mod.ts";
export * as train from "./src/train/mod.ts";
export * as viz from "./src/viz/mod.ts";
export * as pde from "./src/pde/mod.ts";
export * as lm from "./src/lm/mod.ts";
export * as dist from "./src/dist/mod.ts";

// Every error class at the top level too, beside its layer (catch `SingularMatrixError`, not
// `solve.SingularMatrixError`).
export { CudaError, OutOfMemoryError } from "./src/backend/cuda/errors.ts";
export { SafetensorsError } from "./src/nn/mod.ts";
export { SingularMatrixError, SolverError } from "./src/solve/mod.ts";
export { TrainingDivergedError } from "./src/train/mod.ts";
export { DataFileError, ExpertSolveError, ExpressionError } from "./src/pde/mod.ts";
export { CheckpointError, ConfigError, DataError, TokenizerError } from "./src/lm/mod.ts";
export { PlotlyUnavailableError } from "./src/viz/mod.ts";
export { CollectiveMismatchError, DistributedError, NcclError, PeerError, RendezvousError } from "./src/dist/mod.ts";

import { initBackend } from "./src/backend/select.ts";
await initBackend();
