/**
 * The rendezvous: rank 0 serves a small TCP key–value store at the master's address (as
 * PyTorch's TCPStore); every rank (rank 0 too) connects, joins with its rank, the world size it
 * believes in and the port of its ring listener, and waits until all have joined. The server
 * refuses a rank out of range, a repeated rank and a different world size (every rank then fails
 * with a `RendezvousError`), and gives up when ranks are missing at the timeout. After the join it
 * holds keys (the NCCL unique id) and watches the connections: a rank whose connection drops
 * before it leaves is announced to the others as lost, so a rank waiting on a collective stops at
 * once instead of at its timeout.
 *
 * @module
 */

import { RendezvousError } from "./errors.ts";
import { Link } from "./wire.ts";

/**
 * Where each rank's ring listener is (the host as the server saw the rank's connection).
 *
 * @example
 * ```ts
 * import type { PeerAddress } from "./store.ts";
 * const peers: PeerAddress[] = [{ host: "127.0.0.1", port: 40111 }, { host: "127.0.0.1", port: 40112 }];
 * ```
 */
export interface PeerAddress {
  /** Host name or address. */
  host: string;
  /** Port of its ring listener (0 when it has none). */
  port: number;
}

interface Request {
  id?: number;
  op: "join" | "set" | "get" | "leave";
  rank?: number;
  worldSize?: number;
  port?: number;
  key?: string;
  value?: string;
}

const OP = "initProcessGroup";

/**
 * Rank 0's rendezvous server (see the module notes).
 *
 * @example
 * ```ts
 * import { RendezvousServer } from "./store.ts";
 * // const server = RendezvousServer.start("127.0.0.1", 29500, 2, 30); ... await server.closed;
 * ```
 */
export class RendezvousServer {
  readonly #listener: Deno.Listener;
  readonly #worldSize: number;
  readonly #joined = new Map<number, { link: Link; address: PeerAddress }>();
  readonly #left = new Set<number>();
  readonly #links = new Set<Link>();
  readonly #values = new Map<string, string>();
  readonly #waiting = new Map<string, { link: Link; id: number }[]>();
  #failure: string | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #done!: () => void;
  /** Resolves when every rank has left (or the server gave up). */
  readonly closed: Promise<void>;

  private constructor(listener: Deno.Listener, worldSize: number, timeout: number) {
    this.#listener = listener;
    this.#worldSize = worldSize;
    this.closed = new Promise((resolve) => this.#done = resolve);
    this.#timer = setTimeout(() => {
      const missing = Array.from({ length: worldSize }, (_, r) => r).filter((r) => !this.#joined.has(r));
      this.#fail(
        `rank${missing.length > 1 ? "s" : ""} ${missing.join(", ")} did not join within ${timeout} s ` +
          "(not started, crashed early, or given another MASTER_ADDR/MASTER_PORT)",
      );
    }, timeout * 1000);
    this.#accept();
  }

  /**
   * Listens on `host:port` for a world of `worldSize`; `timeout` seconds for every rank to join.
   * A port in use is a `RendezvousError`.
   */
  static start(host: string, port: number, worldSize: number, timeout: number): RendezvousServer {
    const local = host === "localhost" || host.startsWith("127.") || host === "::1";
    let listener: Deno.Listener;
    try {
      listener = Deno.listen({ hostname: local ? host : "0.0.0.0", port });
    } catch (e) {
      const inUse = e instanceof Deno.errors.AddrInUse;
      throw new RendezvousError(
        OP,
        inUse
          ? `rank 0 cannot serve the rendezvous: port ${port} is in use on this machine (another run?); ` +
            "pick another MASTER_PORT"
          : `rank 0 cannot listen on ${host}:${port}: ${(e as Error).message}`,
      );
    }
    return new RendezvousServer(listener, worldSize, timeout);
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        const link = new Link(conn);
        this.#links.add(link);
        this.#serve(link);
      }
    } catch {
      // the listener was closed
    }
  }

  async #serve(link: Link): Promise<void> {
    let rank = -1;
    try {
      for (;;) {
        const req = await link.readJson<Request>("rendezvous", Infinity);
        if (req.op === "join") rank = this.#join(link, req);
        else if (req.op === "set") this.#set(link, req);
        else if (req.op === "get") this.#get(link, req);
        else if (req.op === "leave") {
          this.#left.add(rank);
          await link.sendJson({ id: req.id, ok: true });
          this.#maybeClose();
          return;
        }
      }
    } catch {
      // the connection dropped: a joined rank that did not leave is lost
      this.#links.delete(link);
      link.close();
      if (rank >= 0 && !this.#left.has(rank) && this.#failure === null) {
        this.#left.add(rank);
        this.#broadcast({ event: "lost", rank });
        this.#maybeClose();
      }
    }
  }

  #join(link: Link, req: Request): number {
    const rank = req.rank!;
    const size = req.worldSize!;
    let problem: string | null = null;
    if (size !== this.#worldSize) {
      problem = `rank ${rank} has WORLD_SIZE ${size} but rank 0 has ${this.#worldSize}; start every rank with the same`;
    } else if (!(rank >= 0 && rank < size)) {
      problem = `rank ${rank} is outside a world of ${size}`;
    } else if (this.#joined.has(rank)) {
      problem = `rank ${rank} joined twice (two processes were given RANK=${rank})`;
    }
    if (problem !== null) {
      link.sendJson({ id: req.id, error: problem }).catch(() => {});
      this.#fail(problem);
      return -1;
    }
    link.peer = rank;
    const host = (link.conn.remoteAddr as Deno.NetAddr).hostname;
    this.#joined.set(rank, { link, address: { host, port: req.port ?? 0 } });
    if (this.#failure !== null) link.sendJson({ id: req.id, error: this.#failure }).catch(() => {});
    else if (this.#joined.size === this.#worldSize) {
      clearTimeout(this.#timer);
      const peers = Array.from({ length: this.#worldSize }, (_, r) => this.#joined.get(r)!.address);
      for (const { link: l } of this.#joined.values()) l.sendJson({ event: "start", peers }).catch(() => {});
    }
    return rank;
  }

  #set(link: Link, req: Request): void {
    this.#values.set(req.key!, req.value!);
    link.sendJson({ id: req.id, ok: true }).catch(() => {});
    for (const w of this.#waiting.get(req.key!) ?? []) {
      w.link.sendJson({ id: w.id, ok: true, value: req.value }).catch(() => {});
    }
    this.#waiting.delete(req.key!);
  }

  #get(link: Link, req: Request): void {
    const value = this.#values.get(req.key!);
    if (value !== undefined) link.sendJson({ id: req.id, ok: true, value }).catch(() => {});
    else this.#waiting.set(req.key!, [...(this.#waiting.get(req.key!) ?? []), { link, id: req.id! }]);
  }

  #broadcast(message: unknown): void {
    for (const l of this.#links) l.sendJson(message).catch(() => {});
  }

  #fail(message: string): void {
    if (this.#failure !== null) return;
    this.#failure = message;
    clearTimeout(this.#timer);
    this.#broadcast({ event: "failed", message });
    setTimeout(() => this.close(), 1000);
  }

  #maybeClose(): void {
    if (this.#left.size === this.#worldSize) this.close();
  }

  /** Stops serving and closes every connection. */
  close(): void {
    clearTimeout(this.#timer);
    try {
      this.#listener.close();
    } catch {
      // already closed
    }
    for (const l of this.#links) l.close();
    this.#done();
  }
}

/**
 * A rank's connection to the rendezvous server: join, keys, leave, and the announcements of lost
 * ranks (`onLost`).
 *
 * @example
 * ```ts
 * import { RendezvousClient } from "./store.ts";
 * // const client = await RendezvousClient.connect("127.0.0.1", 29500, Date.now() + 30_000);
 * // const peers = await client.join(1, 2, ringPort, deadline);
 * ```
 */
export class RendezvousClient {
  readonly #link: Link;
  #next = 1;
  readonly #pending = new Map<number, { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  #start: PromiseWithResolvers<PeerAddress[]> = Promise.withResolvers();
  #failure: Error | null = null;
  #leaving = false;
  /** Called with the rank of a peer whose connection to the server dropped (or -1: the server's). */
  onLost: (rank: number) => void = () => {};

  private constructor(link: Link) {
    this.#link = link;
    this.#start.promise.catch(() => {});
    this.#listen();
  }

  /**
   * Connects to the server, retrying until `deadline` (ms since the epoch) while it is not up yet;
   * then a `RendezvousError` says the master is unreachable.
   */
  static async connect(host: string, port: number, deadline: number): Promise<RendezvousClient> {
    let last = "";
    let wait = 20;
    for (;;) {
      try {
        return new RendezvousClient(new Link(await Deno.connect({ hostname: host, port }), 0));
      } catch (e) {
        last = (e as Error).message;
      }
      if (Date.now() + wait > deadline) break;
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(500, wait * 2);
    }
    throw new RendezvousError(
      OP,
      `could not reach the master at ${host}:${port} (${last}); is rank 0 running, and do MASTER_ADDR and ` +
        "MASTER_PORT name it on every rank?",
    );
  }

  async #listen(): Promise<void> {
    try {
      for (;;) {
        const msg = await this.#link.readJson("rendezvous", Infinity);
        if (typeof msg.id === "number") {
          const p = this.#pending.get(msg.id);
          this.#pending.delete(msg.id);
          if (msg.error) p?.reject(new RendezvousError(OP, String(msg.error)));
          else p?.resolve(msg);
        } else if (msg.event === "start") this.#start.resolve(msg.peers as PeerAddress[]);
        else if (msg.event === "failed") this.#abort(new RendezvousError(OP, String(msg.message)));
        else if (msg.event === "lost") this.onLost(msg.rank as number);
      }
    } catch {
      if (!this.#leaving) {
        this.#abort(new RendezvousError(OP, "the connection to the master (rank 0) dropped: rank 0 exited or crashed"));
        this.onLost(0);
      }
    }
  }

  #abort(e: Error): void {
    this.#failure ??= e;
    this.#start.reject(e);
    for (const p of this.#pending.values()) p.reject(e);
    this.#pending.clear();
  }

  async #request(req: Request): Promise<Record<string, unknown>> {
    if (this.#failure) throw this.#failure;
    const id = this.#next++;
    const reply = new Promise<Record<string, unknown>>((resolve, reject) => this.#pending.set(id, { resolve, reject }));
    await this.#link.sendJson({ ...req, id }, OP);
    return reply;
  }

  /**
   * Joins as `rank` of `worldSize` with a ring listener on `port` (0: none) and waits until all
   * ranks have joined; returns every rank's address.
   */
  async join(rank: number, worldSize: number, port: number, deadline: number): Promise<PeerAddress[]> {
    const accepted = this.#request({ op: "join", rank, worldSize, port });
    accepted.catch(() => {});
    // A second more than the server's own limit, so its message (naming the missing ranks) comes first.
    return await withDeadline(
      Promise.race([this.#start.promise, accepted.then(() => this.#start.promise)]),
      deadline + 1000,
      () =>
        new RendezvousError(
          OP,
          `rank ${rank}: not every rank of ${worldSize} joined within the timeout (missing ranks)`,
        ),
    );
  }

  /** Stores `value` under `key`. */
  async set(key: string, value: string): Promise<void> {
    await this.#request({ op: "set", key, value });
  }

  /** The value of `key`, waiting for it until `deadline`. */
  async get(key: string, deadline: number): Promise<string> {
    const reply = this.#request({ op: "get", key });
    reply.catch(() => {});
    const msg = await withDeadline(reply, deadline, () => new RendezvousError(OP, `no value for "${key}" in time`));
    return String(msg.value);
  }

  /** Leaves the group (the server no longer reports this rank as lost) and closes. */
  async leave(): Promise<void> {
    this.#leaving = true;
    try {
      await withDeadline(this.#request({ op: "leave" }), Date.now() + 2000, () => new Error("leave"));
    } catch {
      // the server is gone already: nothing to tell it
    }
    this.#link.close();
  }

  /** Closes the connection without leaving. */
  close(): void {
    this.#leaving = true;
    this.#link.close();
  }
}

async function withDeadline<T>(p: Promise<T>, deadline: number, error: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(error()), Math.max(0, deadline - Date.now()));
  });
  try {
    return await Promise.race([p, expired]);
  } finally {
    clearTimeout(timer);
  }
}
