// Prometheus metrics of one host process (prom-client): per device (VM) and per QP counters,
// read at scrape time from what the host already counts — the ObservedLink's per-QP traffic, the
// workload's completions by status, the provider's transport events and drops — plus the dirty
// pages the migration reported and its phase. Counters are set from those absolute values on
// every collection, so a scrape never lags and nothing is counted twice.
import client from 'prom-client';
import type { QpTraffic } from '../net/observed-link.js';
import { CqeStatus } from '../device/abi.js';

export const MIGRATION_PHASES = ['none', 'precopy', 'stop-and-copy', 'switchover', 'resumed', 'migrated-out', 'incoming'] as const;
export type MigrationPhase = (typeof MIGRATION_PHASES)[number];

export interface QpMetricsSnapshot {
  qpn: number;
  traffic: QpTraffic;
  /** Completions polled by the guest, by CqeStatus number. */
  byStatus: Record<string, number>;
}

export interface VmMetricsSnapshot {
  vm: string;
  ip: string;
  qps: QpMetricsSnapshot[];
  /** Traffic of packets no QP could be named for (too short, or an unknown connection). */
  unattributed: QpTraffic | null;
  providerEvents: Record<string, number>;
  dropped: Record<string, number>;
  dirtyPages: number;
  migrationPhase: MigrationPhase;
}

type Source = () => VmMetricsSnapshot[];

const statusName = (s: string) => (CqeStatus[Number(s)] ?? `status_${s}`).toString();

/** A registry whose metrics describe the VMs `source` returns, labelled with this host's name. */
/** What the metrics keep of a VM that migrated away: its phase and last dirty-page count. */
export function departedSnapshot(vm: string, d: { ip: string; dirtyPages: number }): VmMetricsSnapshot {
  return { vm, ip: d.ip, qps: [], unattributed: null, providerEvents: {}, dropped: {}, dirtyPages: d.dirtyPages, migrationPhase: 'migrated-out' };
}

export function createHostRegistry(host: string, source: Source): client.Registry {
  const registry = new client.Registry();
  registry.setDefaultLabels({ host });
  const qpCounter = (name: string, help: string, pick: (t: QpTraffic) => number) =>
    new client.Counter({
      name, help, labelNames: ['vm', 'qp'], registers: [registry],
      collect() {
        this.reset();
        for (const v of source()) for (const q of v.qps) this.inc({ vm: v.vm, qp: String(q.qpn) }, pick(q.traffic));
      },
    });
  const deviceCounter = (name: string, help: string, pick: (t: QpTraffic) => number) =>
    new client.Counter({
      name, help, labelNames: ['vm'], registers: [registry],
      collect() {
        this.reset();
        for (const v of source()) {
          let sum = v.unattributed === null ? 0 : pick(v.unattributed);
          for (const q of v.qps) sum += pick(q.traffic);
          this.inc({ vm: v.vm }, sum);
        }
      },
    });
  qpCounter('vrdma_qp_packets_sent_total', 'RoCE v2 packets a QP sent', (t) => t.packetsSent);
  qpCounter('vrdma_qp_packets_received_total', 'RoCE v2 packets that arrived for a QP', (t) => t.packetsReceived);
  qpCounter('vrdma_qp_bytes_sent_total', 'bytes (BTH through ICRC) a QP sent', (t) => t.bytesSent);
  qpCounter('vrdma_qp_bytes_received_total', 'bytes (BTH through ICRC) that arrived for a QP', (t) => t.bytesReceived);
  qpCounter('vrdma_qp_retransmitted_packets_total', 'request packets a QP sent again (go-back-N, timeout retry)', (t) => t.retransmitted);
  qpCounter('vrdma_qp_rnr_naks_received_total', 'RNR NAKs a QP received', (t) => t.rnrNaksReceived);
  qpCounter('vrdma_qp_rnr_naks_sent_total', 'RNR NAKs a QP sent', (t) => t.rnrNaksSent);
  deviceCounter('vrdma_device_packets_sent_total', 'RoCE v2 packets a device sent', (t) => t.packetsSent);
  deviceCounter('vrdma_device_packets_received_total', 'RoCE v2 packets that arrived for a device', (t) => t.packetsReceived);
  deviceCounter('vrdma_device_bytes_sent_total', 'bytes a device sent', (t) => t.bytesSent);
  deviceCounter('vrdma_device_bytes_received_total', 'bytes that arrived for a device', (t) => t.bytesReceived);
  deviceCounter('vrdma_device_retransmitted_packets_total', 'request packets a device sent again', (t) => t.retransmitted);
  deviceCounter('vrdma_device_rnr_naks_received_total', 'RNR NAKs a device received', (t) => t.rnrNaksReceived);
  deviceCounter('vrdma_device_rnr_naks_sent_total', 'RNR NAKs a device sent', (t) => t.rnrNaksSent);
  new client.Counter({
    name: 'vrdma_qp_completions_total', help: 'completions the guest polled, by QP and status', labelNames: ['vm', 'qp', 'status'], registers: [registry],
    collect() {
      this.reset();
      for (const v of source()) for (const q of v.qps) for (const [s, n] of Object.entries(q.byStatus)) this.inc({ vm: v.vm, qp: String(q.qpn), status: statusName(s) }, n);
    },
  });
  new client.Counter({
    name: 'vrdma_device_transport_events_total', help: 'transport events of the provider (go-back-N, timeouts, NAKs)', labelNames: ['vm', 'event'], registers: [registry],
    collect() {
      this.reset();
      for (const v of source()) for (const [e, n] of Object.entries(v.providerEvents)) this.inc({ vm: v.vm, event: e }, n);
    },
  });
  new client.Counter({
    name: 'vrdma_device_dropped_packets_total', help: 'packets the provider dropped, by reason', labelNames: ['vm', 'reason'], registers: [registry],
    collect() {
      this.reset();
      for (const v of source()) for (const [r, n] of Object.entries(v.dropped)) this.inc({ vm: v.vm, reason: r }, n);
    },
  });
  new client.Gauge({
    name: 'vrdma_dirty_pages', help: 'guest pages found dirty in the last pre-copy harvest', labelNames: ['vm'], registers: [registry],
    collect() {
      this.reset();
      for (const v of source()) this.set({ vm: v.vm }, v.dirtyPages);
    },
  });
  new client.Gauge({
    name: 'vrdma_migration_phase', help: 'the migration phase a VM is in (1 for the current one)', labelNames: ['vm', 'phase'], registers: [registry],
    collect() {
      this.reset();
      for (const v of source()) for (const p of MIGRATION_PHASES) this.set({ vm: v.vm, phase: p }, p === v.migrationPhase ? 1 : 0);
    },
  });
  return registry;
}

/** One exposition of several hosts' registries (their getMetricsAsJSON()), series kept apart by the host label. */
export async function aggregateMetrics(perHost: client.MetricObjectWithValues<client.MetricValue<string>>[][]): Promise<{ contentType: string; text: string }> {
  const merged = client.AggregatorRegistry.aggregate(perHost);
  return { contentType: merged.contentType, text: await merged.metrics() };
}
