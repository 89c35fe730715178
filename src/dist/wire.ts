/**
 * One TCP connection to a peer with deadlines: exact reads into a caller's buffer, whole writes,
 * and length-prefixed JSON messages. A read that passes its deadline closes the connection and
 * raises a `PeerError` (`"timeout"`); a connection closed by the peer raises one (`"lost"`).
 *
 * @module
 */

import { PeerError } from "./errors.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A connection to rank `peer` (-1 before it is known).
 *
 * @example
 * ```ts
 * import { Link } from "./wire.ts";
 * // const link = new Link(await Deno.connect({ hostname: "127.0.0.1", port }), 0);
 * // await link.sendJson({ op: "join" }); const reply = await link.readJson("join", Date.now() + 5000);
 * ```
 */
export class Link {
  /** The socket. */
  readonly conn: Deno.Conn;
  /** The peer's rank, or -1. */
  peer: number;
  #closed = false;
  #header = new Uint8Array(4);

  /** Wraps a connection (Nagle's algorithm off: collectives send in bursts). */
  constructor(conn: Deno.Conn, peer = -1) {
    this.conn = conn;
    this.peer = peer;
    try {
      (conn as Deno.TcpConn).setNoDelay?.(true);
    } catch {
      // not a TCP connection: nothing to tune
    }
  }

  /** Whether `close` was called (or a deadline passed). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Closes the socket (idempotent); a pending read then fails. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // already closed by the runtime
    }
  }

  #who(): string {
    return this.peer >= 0 ? `rank ${this.peer}` : "the peer";
  }

  /**
   * Fills `into` from the socket by `deadline` (ms since the epoch). `op` names the operation in
   * errors.
   */
  async readExactly(into: Uint8Array, op: string, deadline: number): Promise<void> {
    let got = 0;
    while (got < into.length) {
      const n = await this.#read(into.subarray(got), op, deadline);
      if (n === null) {
        this.close();
        throw new PeerError(op, `${this.#who()} closed its connection (its process exited or crashed)`, this.peer);
      }
      got += n;
    }
  }

  async #read(into: Uint8Array, op: string, deadline: number): Promise<number | null> {
    if (this.#closed) throw new PeerError(op, `the connection to ${this.#who()} is closed`, this.peer, "aborted");
    const reading = this.conn.read(into);
    if (!Number.isFinite(deadline)) return await this.#settle(reading, op);
    const left = deadline - Date.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), Math.max(0, left));
    });
    try {
      const r = await Promise.race([reading, expired]);
      if (r === "timeout") {
        reading.catch(() => {}); // closing below fails the pending read
        this.close();
        throw new PeerError(
          op,
          `no answer from ${this.#who()} within the timeout (it hangs, is far slower, or runs a different ` +
            "collective); raise the timeout (PATCHWORK_DIST_TIMEOUT, seconds) if it is only slow",
          this.peer,
          "timeout",
        );
      }
      return r;
    } catch (e) {
      if (e instanceof PeerError) throw e;
      throw this.#failed(op, e);
    } finally {
      clearTimeout(timer);
    }
  }

  async #settle(reading: Promise<number | null>, op: string): Promise<number | null> {
    try {
      return await reading;
    } catch (e) {
      throw this.#failed(op, e);
    }
  }

  #failed(op: string, e: unknown): PeerError {
    const closedHere = this.#closed;
    this.close();
    return closedHere
      ? new PeerError(op, `the connection to ${this.#who()} was closed here`, this.peer, "aborted")
      : new PeerError(op, `the connection to ${this.#who()} failed: ${(e as Error).message}`, this.peer);
  }

  /** Writes all of `bytes`. */
  async write(bytes: Uint8Array, op: string): Promise<void> {
    let sent = 0;
    try {
      while (sent < bytes.length) sent += await this.conn.write(bytes.subarray(sent));
    } catch (e) {
      this.close();
      throw new PeerError(op, `sending to ${this.#who()} failed: ${(e as Error).message}`, this.peer);
    }
  }

  /** Sends one JSON message (4-byte length, then UTF-8). */
  async sendJson(message: unknown, op = "store"): Promise<void> {
    const body = encoder.encode(JSON.stringify(message));
    const out = new Uint8Array(4 + body.length);
    new DataView(out.buffer).setUint32(0, body.length, true);
    out.set(body, 4);
    await this.write(out, op);
  }

  /** Reads one JSON message by `deadline`. */
  async readJson<T = Record<string, unknown>>(op: string, deadline: number): Promise<T> {
    await this.readExactly(this.#header, op, deadline);
    const n = new DataView(this.#header.buffer).getUint32(0, true);
    const body = new Uint8Array(n);
    await this.readExactly(body, op, deadline);
    return JSON.parse(decoder.decode(body)) as T;
  }
}
