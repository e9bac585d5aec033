// Loader of the optional native addon (native/, docs/native.md): what JavaScript cannot do.
// Everything in vrdma works without it, so loading never throws: nativeStatus() says either
// { available: true, addon } or { available: false, reason } with a reason a person can act on.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { NativeError, NativeErrorCode } from './errors.js';

/** Must equal kAbiVersion in native/src/addon.cc; a different number means a stale build. */
export const NATIVE_ABI_VERSION = 3;

/**
 * The addon's exports. Byte arguments are any TypedArray or DataView, over an ArrayBuffer or a
 * SharedArrayBuffer (a device's Wasm memory); offsets and lengths are in bytes and checked against
 * the view. Failed system calls throw system errors (errors.ts, isSystemError).
 */
export interface NativeAddon {
  readonly abiVersion: number;

  /** zlib's crc32 of data[offset, offset+length), continuing `seed` (default 0). */
  crc32(data: ArrayBufferView, offset: number, length: number, seed?: number): number;
  /**
   * The CRC of the range repeated `iterations` times, as `iterations` chained passes in one call:
   * lets a benchmark amortise the JS->C call (tens of ns) over many passes.
   */
  crc32Loop(data: ArrayBufferView, offset: number, length: number, iterations: number): number;

  /**
   * assembly/region.ts regionTranslate in C: offset of [gpa, gpa+len) through the region table at
   * `tableOff` in `memory` (a view over the whole device memory), or ST_OUT_OF_RANGE/ST_OVERFLOW.
   */
  regionLookup(memory: ArrayBufferView, tableOff: number, gpa: number, len: number): number;
  /** out[i] = regionLookup(memory, tableOff, gpas[i], lens[i]); returns the count. */
  regionLookupBatch(memory: ArrayBufferView, tableOff: number, gpas: Float64Array, lens: Float64Array, out: Float64Array): number;

  /** close(2) any fd the addon made or received. */
  closeFd(fd: number): void;
  /** poll(2) on one fd: revents, or 0 on timeout. Blocks up to timeoutMs (-1: forever); pass 0 on the event loop. */
  pollFd(fd: number, events: number, timeoutMs: number): number;
  /** Whether the fd has FD_CLOEXEC; throws a system error EBADF for a closed fd. */
  fdCloexec(fd: number): boolean;
  readonly poll: { readonly POLLIN: number; readonly POLLOUT: number; readonly POLLERR: number; readonly POLLHUP: number };

  /** A new eventfd (EFD_NONBLOCK | EFD_CLOEXEC) with the given initial counter (default 0). */
  eventfdCreate(initial?: number): number;
  /** Add `value` (default 1) to the counter; false if it would overflow (nothing written). */
  eventfdWrite(fd: number, value?: number): boolean;
  /** The counter, reset to 0 by the read; 0 if nothing was signalled. */
  eventfdRead(fd: number): number;

  /** An anonymous memory file (memfd_create, MFD_CLOEXEC), as a VMM backs guest RAM with. */
  memfdCreate(name: string): number;
  /** The host page size in bytes; mappings are made in whole pages. */
  pageSize(): number;
  /**
   * Map fd[fileOffset, +length) shared, read-write, over the first `length` bytes of `view`, a
   * Uint8Array over a shared WebAssembly.Memory's buffer at the target offset: both then see the
   * same pages. The view's start, fileOffset and length must be page-aligned, the range inside the
   * view and the file. A refused mapping leaves the memory as it was.
   */
  mapIntoMemory(view: Uint8Array, fd: number, fileOffset: number, length: number): void;
  /** Put private zero pages back over the first `length` bytes of `view` (same rules). */
  unmapFromMemory(view: Uint8Array, length: number): void;

  /** A listening AF_UNIX stream socket bound to `path` (non-blocking, close-on-exec). */
  unixListen(path: string, backlog?: number): number;
  /** A socket connected to the listener at `path`. */
  unixConnect(path: string): number;
  /** The next pending connection, or -1 if none. */
  unixAccept(fd: number): number;
  /** Two connected AF_UNIX stream sockets. */
  unixSocketPair(): [number, number];
  /** sendmsg with `fds` as SCM_RIGHTS on the first byte: bytes sent, or -1 if it would block. */
  unixSendMsg(fd: number, data: ArrayBufferView, offset: number, length: number, fds?: number[]): number;
  /** recvmsg; see UnixReceived. At most `maxFds` (default 16, max 253) fds are accepted. */
  unixRecvMsg(fd: number, data: ArrayBufferView, offset: number, length: number, maxFds?: number): UnixReceived;

  /**
   * A non-blocking UDP socket bound to a dotted IPv4 address and port (0: any free port), with
   * IP_MTU_DISCOVER = IP_PMTUDISC_DO so Linux sends its datagrams with DF and IPv4 id 0 (the id
   * vrdma seals ICRCs under) and refuses, with EMSGSIZE, one longer than the path MTU.
   *
   * With `steerGroup` (an integer in 2..64, and a fixed port) the socket is one member of an
   * SO_REUSEPORT group on address:port whose classic BPF program sends a datagram with BTH
   * destination QPN q to the member with index q mod steerGroup; members are indexed in the order
   * they were bound, and a datagram shorter than 8 bytes goes to member 0 (docs/native.md, "QPN
   * steering"). A bad steerGroup, or one with port 0, is a RangeError before any socket is made.
   */
  udpBind(address: string, port: number, steerGroup?: number): number;
  /**
   * Input readiness of `fd` on this thread's event loop (libuv uv_poll, level-triggered):
   * onReadable() runs from the loop while the fd has input left unread, until stop().
   */
  FdWatch: new (fd: number, onReadable: () => void) => { stop(): void };
  /**
   * Replace the steering program of the group `fd` belongs to: the QPNs in `overrides` (QPN,
   * member pairs, at most 2000) go to their member, every other QPN to QPN mod steerGroup.
   */
  udpSteer(fd: number, steerGroup: number, overrides: Uint32Array): void;
  /** setsockopt of an int option, on any socket (a node:dgram one's fd too); values >= 0. */
  socketSetOption(fd: number, name: SocketOptionName, value: number): void;
  /** getsockopt of an int option (buffer sizes as Linux reports them: twice what was set, capped). */
  socketGetOption(fd: number, name: SocketOptionName): number;
  /**
   * A raw IPv4 socket (non-blocking, close-on-exec; needs CAP_NET_RAW) receiving a copy of every
   * packet of `protocol` (17: UDP) delivered to this host, IPv4 header included. Read it with
   * udpRecvMany: shows tests the headers the kernel really sent.
   */
  rawIpv4Open(protocol: number): number;
  /** The IPv4 address (a host-order number) and port a UDP socket is bound to. */
  udpLocalAddress(fd: number): { ipv4: number; port: number };
  /**
   * sendmmsg: send `count` datagrams described by `desc` (udp.DESC_WORDS words each:
   * [offset, length, ipv4, port]) from `data`; returns how many were taken (0: buffer full).
   */
  udpSendMany(fd: number, data: ArrayBufferView, desc: Uint32Array, count: number): number;
  /**
   * recvmmsg: receive up to `count` datagrams into the slots `desc` names ([offset, capacity, -, -])
   * and rewrite each filled entry to [offset, length, ipv4, port | flags]; returns how many arrived.
   */
  udpRecvMany(fd: number, data: ArrayBufferView, desc: Uint32Array, count: number): number;
  /** Batch descriptor words per datagram, the truncation flag, and the most datagrams per call. */
  readonly udp: {
    readonly DESC_WORDS: number;
    readonly TRUNCATED: number;
    readonly MAX_BATCH: number;
    /** Values of IP_MTU_DISCOVER: IP_PMTUDISC_DONT, _WANT (Linux's default), _DO, _PROBE. */
    readonly PMTUDISC: { readonly DONT: number; readonly WANT: number; readonly DO: number; readonly PROBE: number };
  };

  /** The RDMA devices libibverbs sees (none unless built against libibverbs); see rdma-devices.ts. */
  listRdmaDevices(): RdmaDeviceList;
}

/** The socket options socketSetOption/socketGetOption know. */
export type SocketOptionName = 'IP_MTU_DISCOVER' | 'SO_RCVBUF' | 'SO_SNDBUF';

/** One RDMA device as libibverbs names it. */
export interface RdmaDevice {
  readonly name: string;
  /** Node GUID, 16 hex digits. */
  readonly guid: string;
  /** ibv_node_type_str: "channel adapter", "RNIC", ... */
  readonly nodeType: string;
}

export interface RdmaDeviceList {
  /** Whether the addon was built against libibverbs. */
  readonly verbsCompiledIn: boolean;
  readonly devices: RdmaDevice[];
  /** Why the list is empty; absent when devices were found. */
  readonly reason?: string;
}

/** What unixRecvMsg got. The caller owns every fd in `fds` and must close those it did not expect. */
export interface UnixReceived {
  /** Bytes received; 0 at end of stream, -1 when nothing was ready. */
  readonly bytes: number;
  /** Descriptors that arrived with the bytes, close-on-exec. */
  readonly fds: number[];
  /** More fds were sent than maxFds: the rest were closed; treat it as a protocol error. */
  readonly controlTruncated: boolean;
}

export type NativeStatus =
  | { readonly available: true; readonly addon: NativeAddon; readonly path: string }
  | { readonly available: false; readonly reason: string; readonly path: string };

/** Where `npm run build:native` puts the addon (dist/src/native/addon.js -> native/build/Release). */
export function defaultAddonPath(): string {
  return fileURLToPath(new URL('../../../native/build/Release/vrdma_native.node', import.meta.url));
}

const BUILD_HINT = 'run "npm run build:native" (needs g++, make, python3 and Node\'s headers)';

/** Load the addon at `path`; never throws. */
export function loadNativeFrom(path: string): NativeStatus {
  if (process.platform !== 'linux') {
    return { available: false, path, reason: `native addon is Linux-only (this platform is ${process.platform})` };
  }
  if (!existsSync(path)) {
    return { available: false, path, reason: `native addon not built: ${path} does not exist; ${BUILD_HINT}` };
  }
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return { available: false, path, reason: `native addon at ${path} failed to load (${message}); ${BUILD_HINT}` };
  }
  if (addon.abiVersion !== NATIVE_ABI_VERSION) {
    return {
      available: false,
      path,
      reason: `native addon at ${path} is a stale build (ABI ${String(addon.abiVersion)}, expected ${NATIVE_ABI_VERSION}); ${BUILD_HINT}`,
    };
  }
  return { available: true, addon, path };
}

let cached: NativeStatus | undefined;

/**
 * The addon at its default path, loaded once. VRDMA_NATIVE_DISABLE=1 turns it off, to run
 * everything as on a host without it.
 */
export function nativeStatus(): NativeStatus {
  if (cached === undefined) {
    const path = defaultAddonPath();
    cached =
      process.env.VRDMA_NATIVE_DISABLE === '1'
        ? { available: false, path, reason: 'native addon disabled by VRDMA_NATIVE_DISABLE=1' }
        : loadNativeFrom(path);
  }
  return cached;
}

/** The addon, or a NativeError(Unavailable) carrying the reason. */
export function requireNative(): NativeAddon {
  const status = nativeStatus();
  if (!status.available) throw new NativeError(NativeErrorCode.Unavailable, status.reason);
  return status.addon;
}
