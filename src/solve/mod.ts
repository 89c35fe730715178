export * from "./errors.ts";
export * from "./linear.ts";
