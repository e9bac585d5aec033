// A separate process that holds the VM's address with a UdpLink, driven over the fork IPC
// channel: the migration source or destination host (R7). It echoes every packet back to its
// sender prefixed with its own name, so the test can tell which process answered.
// argv: ip port name. In: 'open', 'close'. Out: {bound: port}, {error: code}, {closed: counters}.
import { NetError } from '../../src/net/errors.js';
import { UdpLink } from '../../src/net/udp-link.js';

const [ip, portText, name] = process.argv.slice(2);
const tag = new TextEncoder().encode(name);
let link: UdpLink | null = null;

async function open(): Promise<object> {
  try {
    link = await UdpLink.open({ ip, port: Number(portText) });
  } catch (err) {
    return { error: err instanceof NetError ? err.code : String(err) };
  }
  const l = link;
  l.onPacket((packet, from) => {
    const reply = new Uint8Array(tag.length + packet.length);
    reply.set(tag);
    reply.set(packet, tag.length);
    l.send(reply, from.ip, from.port);
  });
  return { bound: l.localPort };
}

process.on('message', (msg) => {
  if (msg === 'open') void open().then((r) => process.send!(r));
  else if (msg === 'close') void link!.close().then(() => process.send!({ closed: link!.counters() }));
  else if (msg === 'exit') void (link?.close() ?? Promise.resolve()).then(() => process.disconnect());
});
process.send!({ ready: name });
