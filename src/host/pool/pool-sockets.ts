// The VMs' UDP sockets of a host pool held by the pool's main thread (HostPoolOptions.socket
// 'main'): a VM task in a worker binds its address by asking the main thread over a
// second port, and gets the two packet rings of a SocketSide (../../backend/socket-side.ts) to
// send and receive through (a RingLink); releasing the address closes that socket there. So no
// worker ever holds a socket, and a worker that dies — terminated, crashed — takes none down with
// it: Node 20 aborts the whole process when a worker is torn down while datagrams reach a socket
// it holds (docs/durable-backends.md, "Who holds the socket"). The main thread closes what a lost
// task held, so its address is free again.
//
// The VM's MovableLink (vm.ts) stays in the worker and opens one of these per bind: a migration
// releases and binds the address exactly as with a socket of its own.
import type { MessagePort } from 'node:worker_threads';
import { RingLink } from '../../backend/ring-link.js';
import { SocketSide } from '../../backend/socket-side.js';
import { NetError, type NetErrorCode } from '../../net/errors.js';
import type { LinkOpener } from '../../net/movable-link.js';
import { type Link, ROCE_UDP_PORT } from '../../nic/link.js';
import { type OpTable, RemoteError } from '../ipc.js';
import { type PortClient, servePort } from './port-channel.js';

const MiB = 1024 * 1024;
/** Each direction's packet ring of one VM socket. */
export const POOL_RING_BYTES = 4 * MiB;

interface Bound {
  id: number;
  rings: { tx: SharedArrayBuffer; rx: SharedArrayBuffer };
}

/** The main thread's side: the sockets every task holds here, by bind. */
export class PoolSockets {
  private readonly held = new Map<number, { side: SocketSide; task: number; ip: string }>();
  /** Tasks served now; one dropped is told so by a bind that was in flight meanwhile. */
  private readonly live = new Map<number, { live: boolean }>();
  private nextId = 1;

  constructor(private readonly ringBytes = POOL_RING_BYTES) {}

  /** The ops one task may call: it binds and releases only its own sockets. */
  ops(task: number): OpTable {
    const state = { live: true };
    this.live.set(task, state);
    return {
      bindAddress: async (a: Record<string, unknown>): Promise<Bound> => {
        const ip = String(a.ip);
        const port = a.port === undefined ? undefined : Number(a.port);
        if (!state.live) throw new Error(`task ${task} has ended`);
        const side = await SocketSide.open({ ip, port, ringBytes: this.ringBytes });
        if (!state.live) {
          // The task was lost while its socket was bound: nobody would release it.
          await side.close();
          throw new Error(`task ${task} has ended`);
        }
        const id = this.nextId++;
        this.held.set(id, { side, task, ip });
        return { id, rings: side.rings };
      },
      releaseAddress: async (a: Record<string, unknown>): Promise<void> => {
        const id = Number(a.id);
        const h = this.held.get(id);
        if (h === undefined || h.task !== task) throw new Error(`task ${task} holds no socket ${id}`);
        this.held.delete(id);
        await h.side.close();
      },
    };
  }

  /** Serve `task`'s socket calls on `port` (the task's end is given to socketOpener). */
  serve(task: number, port: MessagePort): void {
    servePort(port, this.ops(task));
  }

  /** The addresses bound here now, sorted. */
  addresses(): string[] {
    return [...this.held.values()].map((h) => h.ip).sort();
  }

  /** Datagrams the rings dropped, arriving and leaving, over every socket held now. */
  get dropped(): { rx: number; tx: number } {
    let rx = 0;
    let tx = 0;
    for (const { side } of this.held.values()) {
      rx += side.dropped.rx;
      tx += side.dropped.tx;
    }
    return { rx, tx };
  }

  /** Close every socket `task` holds (it ended, or was lost with its worker): the addresses are free. */
  async dropTask(task: number): Promise<void> {
    const state = this.live.get(task);
    if (state !== undefined) state.live = false;
    this.live.delete(task);
    const mine = [...this.held].filter(([, h]) => h.task === task);
    for (const [id] of mine) this.held.delete(id);
    await Promise.all(mine.map(([, h]) => h.side.close()));
  }

  async close(): Promise<void> {
    for (const state of this.live.values()) state.live = false;
    this.live.clear();
    const all = [...this.held.values()];
    this.held.clear();
    await Promise.all(all.map((h) => h.side.close()));
  }
}

/**
 * The worker's side: for VM address `ip`, an opener the VM's MovableLink calls at each bind. It
 * rejects with NetError as a socket bound here would (ADDRESS_IN_USE while the address is held).
 */
export function socketOpener(client: PortClient, ip: string, port?: number): LinkOpener {
  return async (): Promise<Link> => {
    let bound: Bound;
    try {
      bound = await client.call<Bound>('bindAddress', { ip, port });
    } catch (err) {
      if (err instanceof RemoteError && err.remote.name === 'NetError' && err.remote.code !== undefined) {
        throw new NetError(err.remote.code as NetErrorCode, `${ip}, bound by the pool's thread: ${err.remote.message}`);
      }
      throw err;
    }
    return new HeldSocketLink(ip, port, bound, client);
  };
}

/** A socket the main thread holds for this worker: a RingLink whose close gives the socket up there. */
class HeldSocketLink implements Link {
  private readonly ring: RingLink;
  private closing: Promise<void> | null = null;

  constructor(readonly localIp: string, port: number | undefined, private readonly bound: Bound, private readonly client: PortClient) {
    this.ring = new RingLink(localIp, port ?? ROCE_UDP_PORT, bound.rings);
  }

  get localPort(): number {
    return this.ring.localPort;
  }

  send(packet: Uint8Array, dstIp: string, dstPort?: number): void {
    this.ring.send(packet, dstIp, dstPort);
  }

  onPacket(handler: Parameters<Link['onPacket']>[0]): void {
    this.ring.onPacket(handler);
  }

  /** The sends so far have reached the main thread's socket side (MovableLink.release waits for it). */
  settled(): Promise<void> {
    return this.ring.settled();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.ring.close();
      // The main thread may be gone already (the pool closing): the socket closes with it.
      await this.client.call('releaseAddress', { id: this.bound.id }).catch(() => {});
    })();
    return this.closing;
  }
}
