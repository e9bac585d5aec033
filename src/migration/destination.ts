// The destination side of a migration: accept one source, lay out the same guest RAM in a fresh
// DeviceMemory and fill it round by round, then take the device, guest and application state,
// build the VM around them on a link bound to the VM's address, resume every QP the source
// suspended, hand the guest back to the host, and confirm. A source that breaks the protocol (or
// asks for more than this host allows) is refused with an ABORT naming why; nothing it sent
// survives. After CONFIRM the destination watches each QP for its first completion and reports
// when it came (the QP blackout).
import { type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import { DeviceMemory } from '../memory/device-memory.js';
import { Channel, DEFAULT_TIMEOUT_MS } from './channel.js';
import { MigrationError, MigrationErrorCode, asMigrationError } from './errors.js';
import { MessageType, encodeFrame } from './frame.js';
import {
  type Hello, type QpInstant, type Switchover, decodeHello, decodePages, decodeRoundEnd, decodeStatePreview, decodeSwitchover, encodeBlackout, encodeConfirm,
  encodeHelloAck,
} from './messages.js';
import { planRam, writePages } from './precopy.js';
import { instant } from './report.js';

/** What the destination has in hand to build the VM from. */
export interface RestoreParts {
  ip: string;
  /** Guest RAM as the source had it at the switchover. */
  dm: DeviceMemory;
  deviceState: Uint8Array;
  guestState: Uint8Array;
  /**
   * The application's state, to check here: restoreVm runs before any QP resumes, so refusing the
   * VM then is clean; once QPs resume, the VM has answered its peers and must not fail.
   */
  appState: Uint8Array;
}

/** What the coordinator needs of the VM it builds. */
export interface DestinationVm {
  /**
   * Resume these QPs and say when each was: QP by QP in the VM's thread (qp-steps.ts), or in one
   * call to a device in another thread. The first failure is thrown.
   */
  resumeAll(qpns: readonly number[]): QpInstant[];
  /**
   * When each of `qpns` first completed something, watched for up to `watchMs` (the QP blackout's
   * end), where the VM's provider hands over its completions (first-completion.ts).
   */
  firstCompletions(qpns: readonly number[], watchMs: number): Promise<Map<number, number>>;
  close(): Promise<void>;
}

export interface IncomingMigration<V extends DestinationVm> {
  vm: V;
  /** The application's state from the source's pauseGuest(). */
  appState: Uint8Array;
  /** The destination's first guest activity (just before resumeGuest, if given, was called). */
  resumedAt: number;
  /** The source's last guest activity. */
  pausedAt: number;
  /** QPs resumed here, each with when. */
  resumed: QpInstant[];
}

export interface ListenOptions<V extends DestinationVm> {
  /** Build the VM on this host from RAM already copied and the saved states (B, C, D's restore). */
  restoreVm(parts: RestoreParts): Promise<V>;
  /**
   * Vet a STATE_PREVIEW while the guest still runs on the source: restore it for trial over
   * `scratch` (memory laid out as the VM's, its RAM not copied) and throw it away, never binding
   * the address. Throwing refuses the VM before its guest ever stops. Without it a preview is
   * only decoded by the framing.
   */
  vetVm?(parts: { ip: string; scratch: DeviceMemory; deviceState: Uint8Array; guestState: Uint8Array }): Promise<void>;
  /** Let the guest's workload run from the application state (called before CONFIRM). */
  resumeGuest?(vm: V, appState: Uint8Array): void | Promise<void>;
  /** Largest guest RAM window accepted; default 3 GiB (wasm32). */
  maxRamBytes?: number;
  /** Largest device arena accepted; default 256 MiB. */
  maxArenaBytes?: number;
  maxFrameBytes?: number;
  timeoutMs?: number;
}

export interface MigrationListener<V extends DestinationVm> {
  /** Where the listener is bound (the port, when 0 was asked for). */
  readonly ready: Promise<AddressInfo>;
  /** The migrated VM, once it runs here; rejects if the one migration this listener takes fails. */
  readonly accepted: Promise<IncomingMigration<V>>;
  /** Stop listening (a migration under way is not interrupted). */
  close(): Promise<void>;
}

/** Listen for one incoming migration at host:port. */
export function listenForMigration<V extends DestinationVm>(address: { host: string; port: number }, options: ListenOptions<V>): MigrationListener<V> {
  const server: Server = createServer();
  let taken = false;
  const ready = new Promise<AddressInfo>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => resolve(server.address() as AddressInfo));
  });
  const closeServer = (): Promise<void> => new Promise((resolve) => server.close(() => resolve()));
  const accepted = new Promise<IncomingMigration<V>>((resolve, reject) => {
    ready.catch(reject);
    server.on('connection', (socket: Socket) => {
      if (taken) {
        socket.destroy();
        return;
      }
      taken = true;
      void closeServer();
      receive(socket, options).then(resolve, reject);
    });
  });
  accepted.catch(() => {});
  return { ready, accepted, close: closeServer };
}

async function receive<V extends DestinationVm>(socket: Socket, options: ListenOptions<V>): Promise<IncomingMigration<V>> {
  const ch = new Channel(socket, { timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS, maxFrameBytes: options.maxFrameBytes });
  let vm: V | null = null;
  let hello: Hello;
  let switchover: Switchover;
  let appState: Uint8Array;
  const resumed: QpInstant[] = [];
  let resumedAt: number;
  let vetMs = 0;
  try {
    hello = decodeHello((await ch.receive([MessageType.Hello], 'at the start')).body);
    const dm = layOut(hello, options);
    await ch.send(encodeHelloAck());
    vetMs = await receiveRam(ch, dm, async (preview) => {
      if (options.vetVm === undefined) return;
      try {
        await options.vetVm({ ip: hello.ip, scratch: layOut(hello, options), ...preview });
      } catch (err) {
        throw asMigrationError(err, MigrationErrorCode.Refused, 'vetting the state preview');
      }
    });
    const deviceState = (await ch.receive([MessageType.DeviceState], 'after the last round')).body;
    const guestState = (await ch.receive([MessageType.GuestState], 'after the device state')).body;
    appState = (await ch.receive([MessageType.AppState], 'after the guest state')).body.slice();
    switchover = decodeSwitchover((await ch.receive([MessageType.Switchover], 'after the application state')).body);
    // The source has released the address: build the VM and bind it here.
    const restoreStart = instant();
    try {
      vm = await options.restoreVm({ ip: hello.ip, dm, deviceState: deviceState.slice(), guestState: guestState.slice(), appState });
    } catch (err) {
      throw asMigrationError(err, MigrationErrorCode.Switchover, 'restoring the VM');
    }
    const restoreMs = instant() - restoreStart;
    // The source may have given up while we restored; then it is taking the VM back.
    ch.expectNothing('while the VM was restored');
    const resumeStart = instant();
    try {
      resumed.push(...vm.resumeAll(switchover.suspended.map((q) => q.qpn)));
    } catch (err) {
      throw asMigrationError(err, MigrationErrorCode.Switchover, 'resuming the QPs');
    }
    resumedAt = instant();
    try {
      await options.resumeGuest?.(vm, appState);
    } catch (err) {
      throw asMigrationError(err, MigrationErrorCode.Switchover, 'resuming the guest');
    }
    await ch.send(encodeConfirm({ guestResumedAt: resumedAt, vetMs, restoreMs, resumeMs: instant() - resumeStart }));
  } catch (err) {
    const e = asMigrationError(err, MigrationErrorCode.Closed, 'receiving the VM');
    // Free the address before the source hears of the failure and binds it again.
    if (vm !== null) await vm.close().catch(() => {});
    ch.fail(e, true);
    throw e;
  }
  void watchBlackout(ch, vm, switchover.suspended.map((q) => q.qpn), resumed, hello.blackoutWatchMs);
  return { vm, appState, resumedAt, pausedAt: switchover.guestPausedAt, resumed };
}

function layOut(hello: Hello, options: ListenOptions<DestinationVm>): DeviceMemory {
  const maxRam = options.maxRamBytes ?? 3 * 1024 ** 3;
  const maxArena = options.maxArenaBytes ?? 256 * 1024 ** 2;
  if (hello.ramBytes > maxRam) throw new MigrationError(MigrationErrorCode.Refused, `a RAM window of ${hello.ramBytes} bytes exceeds this host's limit of ${maxRam}`);
  if (hello.arenaBytes > maxArena) throw new MigrationError(MigrationErrorCode.Refused, `a device arena of ${hello.arenaBytes} bytes exceeds this host's limit of ${maxArena}`);
  let dm: DeviceMemory;
  try {
    dm = DeviceMemory.create({ ramBytes: hello.ramBytes, arenaBytes: hello.arenaBytes });
  } catch (err) {
    throw asMigrationError(err, MigrationErrorCode.Refused, 'laying out guest memory');
  }
  planRam(dm, hello.regions);
  return dm;
}

/**
 * PAGES and ROUND_END until the final round's end; rounds are numbered 0, 1, 2, ... At most one
 * STATE_PREVIEW, between rounds, goes to `vet`. Returns how long vetting took.
 */
async function receiveRam(ch: Channel, dm: DeviceMemory, vet: (p: { deviceState: Uint8Array; guestState: Uint8Array }) => Promise<void>): Promise<number> {
  let round = 0;
  let pages = 0;
  let vetMs: number | null = null;
  for (;;) {
    const previewMayCome = vetMs === null && pages === 0;
    const f = await ch.receive(previewMayCome ? [MessageType.Pages, MessageType.RoundEnd, MessageType.StatePreview] : [MessageType.Pages, MessageType.RoundEnd], `in round ${round}`);
    if (f.type === MessageType.StatePreview) {
      const t = instant();
      await vet(decodeStatePreview(f.body));
      vetMs = instant() - t;
      await ch.send(encodeFrame(MessageType.PreviewAck));
      continue;
    }
    if (f.type === MessageType.Pages) {
      const batch = decodePages(f.body);
      if (batch.round !== round) throw new MigrationError(MigrationErrorCode.Order, `PAGES of round ${batch.round} arrived in round ${round}`);
      pages += writePages(dm, batch);
      continue;
    }
    const end = decodeRoundEnd(f.body);
    if (end.round !== round) throw new MigrationError(MigrationErrorCode.Order, `ROUND_END of round ${end.round} arrived in round ${round}`);
    if (end.pages !== pages) throw new MigrationError(MigrationErrorCode.Malformed, `round ${round} announced ${end.pages} pages, ${pages} arrived`);
    if (end.final) return vetMs ?? 0;
    round++;
    pages = 0;
  }
}

/** Watch each resumed QP for its first completion, until all have one or the watch ends; then report them. */
async function watchBlackout(ch: Channel, vm: DestinationVm, qpns: readonly number[], resumed: QpInstant[], watchMs: number): Promise<void> {
  let first = new Map<number, number>();
  try {
    first = await vm.firstCompletions(qpns, watchMs);
  } catch {
    // The VM could not be watched (closed meanwhile): its QPs read as not seen.
  }
  try {
    await ch.send(encodeBlackout({ resumed, firstCompletion: qpns.map((qpn) => ({ qpn, at: first.get(qpn) ?? Number.NaN })) }));
    await ch.close();
  } catch {
    // The source stopped listening; the VM runs here regardless.
  }
}
