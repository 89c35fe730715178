import assert from "node:assert/strict";
import { ArgumentError, train } from "../mod.ts";

const spec = {
  steps: { type: "integer", default: 100, min: 0, help: "optimiser steps" },
  lr: { type: "number", default: 1e-3, min: 0, max: 1, help: "learning rate" },
  method: { type: "choice", choices: ["full", "seco", "spaco"], default: "seco", help: "gradient" },
  experts: { type: "integers", default: [1, 2], min: 1, help: "expert counts" },
  out: { type: "string", default: "out", help: "output directory" },
  maxSeconds: { type: "number", min: 0, help: "time budget" },
  resume: { type: "boolean", help: "continue" },
  T: { type: "number", default: 1, help: "final time" },
} as const;

const parse = (args: string[]) => train.parseFlags(spec, args);
const refused = (args: string[], message: RegExp) =>
  assert.throws(() => parse(args), (e: unknown) => e instanceof ArgumentError && message.test(e.message));

Deno.test("parseFlags: typed values over the defaults; names from keys", () => {
  assert.deepEqual(parse([]), {
    steps: 100,
    lr: 1e-3,
    method: "seco",
    experts: [1, 2],
    out: "out",
    resume: false,
    T: 1,
  });
  const f = parse(["--steps", "20", "--lr=3e-4", "--method", "spaco", "--experts", "1,2,4,8", "--max-seconds", "60"]);
  assert.equal(f.steps, 20);
  assert.equal(f.lr, 3e-4);
  assert.equal(f.method, "spaco");
  assert.deepEqual(f.experts, [1, 2, 4, 8]);
  assert.equal(f.maxSeconds, 60);
  assert.equal(parse(["--resume"]).resume, true);
  assert.equal(parse(["--resume=false"]).resume, false);
  assert.equal(parse(["--resume", "--no-resume"]).resume, false);
  assert.equal(parse(["--T", "5"]).T, 5);
  assert.equal(parse(["--T", "-2"]).T, -2, "a negative number is a value, not a flag");
  assert.equal(train.flagName("checkpointEvery"), "checkpoint-every");
  assert.equal(train.flagName("lr"), "lr");
  // The defaults of one parse are not shared with the next.
  parse([]).experts.push(99);
  assert.deepEqual(parse([]).experts, [1, 2]);
});

Deno.test("parseFlags: bad input says what is accepted", () => {
  refused(["--steps", "2.5"], /--steps must be an integer ≥ 0, got "2.5" \(e\.g\. --steps 100\)/);
  refused(["--steps", "-1"], /--steps must be an integer ≥ 0/);
  refused(["--lr", "2"], /--lr must be a number ≥ 0 and ≤ 1, got "2"/);
  refused(["--lr", ""], /--lr must be a number/);
  refused(["--method", "adam"], /--method must be one of full, seco, spaco, got "adam"/);
  refused(["--experts", "1,x"], /--experts must be integers, comma-separated, ≥ 1/);
  refused(["--steps"], /--steps needs a value \(e\.g\. --steps 100\)/);
  refused(["--steps", "--resume"], /--steps needs a value/);
  refused(["--stepz", "3"], /unknown flag --stepz \(did you mean --steps\? run with --help/);
  refused(["--no-steps"], /unknown flag --no-steps/);
  refused(["steps"], /unexpected argument "steps": flags look like --name value/);
  refused(["--resume", "yes"], /unexpected argument "yes"/);
  refused(["--resume=yes"], /--resume must be true or false/);
  assert.throws(
    () => train.parseFlags({ help: { type: "boolean", help: "" } }, []),
    /--help is built in/,
  );
});

Deno.test("parseFlags: --help lists every flag with its default", () => {
  let text = "";
  train.parseFlags(spec, ["--steps", "bad", "--help"], {
    usage: "deno run -A train.ts [flags]",
    description: "Trains a model.",
    onHelp: (t) => void (text = t),
  });
  const lines = text.split("\n");
  assert.equal(lines[0], "usage: deno run -A train.ts [flags]");
  assert.equal(lines[2], "Trains a model.");
  assert.match(text, /\n {2}--steps <integer> +optimiser steps \(default 100\)\n/);
  assert.match(text, /\n {2}--method full\|seco\|spaco +gradient \(default seco\)\n/);
  assert.match(text, /\n {2}--experts <list> +expert counts \(default 1,2\)\n/);
  assert.match(text, /\n {2}--max-seconds <number> +time budget\n/);
  assert.match(text, /\n {2}--resume +continue\n/);
  assert.match(text, /\n {2}--help +print this help and exit$/);
});
