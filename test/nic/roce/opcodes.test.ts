import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BTH_BYTES, HDR_BYTES, HDR_COUNT, Hdr, ONLY, OPCODES, OpFlag, Opcode, opcodeInfo, opcodeName } from '../../../src/nic/roce/opcodes.js';

describe('opcode table', () => {
  it('has every opcode of the brief with its IBTA number and header length', () => {
    // Header lengths (BTH + extended headers) as IBTA 9.2 and Linux rxe give them.
    const lengths: [Opcode, number][] = [
      [Opcode.RcSendFirst, 12], [Opcode.RcSendMiddle, 12], [Opcode.RcSendLast, 12], [Opcode.RcSendLastImm, 16],
      [Opcode.RcSendOnly, 12], [Opcode.RcSendOnlyImm, 16], [Opcode.RcWriteFirst, 28], [Opcode.RcWriteMiddle, 12],
      [Opcode.RcWriteLast, 12], [Opcode.RcWriteLastImm, 16], [Opcode.RcWriteOnly, 28], [Opcode.RcWriteOnlyImm, 32],
      [Opcode.RcReadRequest, 28], [Opcode.RcReadResponseFirst, 16], [Opcode.RcReadResponseMiddle, 12],
      [Opcode.RcReadResponseLast, 16], [Opcode.RcReadResponseOnly, 16], [Opcode.RcAck, 16], [Opcode.RcAtomicAck, 24],
      [Opcode.RcCompareSwap, 40], [Opcode.RcFetchAdd, 40], [Opcode.RcSendLastInv, 16], [Opcode.RcSendOnlyInv, 16],
      [Opcode.UdSendOnly, 20], [Opcode.UdSendOnlyImm, 24],
    ];
    assert.equal(OPCODES.length, lengths.length);
    for (const [op, len] of lengths) assert.equal(opcodeInfo(op)?.headerBytes, len, opcodeName(op));
    assert.equal(opcodeInfo(0x15), undefined);
    assert.equal(opcodeName(0x15), 'OPCODE_0x15');
    assert.equal(opcodeInfo(Opcode.RcWriteOnlyImm)?.offsets[Hdr.ImmDt], 28);
    assert.equal(opcodeInfo(Opcode.RcAtomicAck)?.offsets[Hdr.AtomicAckEth], 16);
    assert.equal(opcodeInfo(Opcode.UdSendOnlyImm)?.offsets[Hdr.ImmDt], 20);
  });

  it('is self-consistent: offsets tile the headers, flags agree with the name', () => {
    for (const info of OPCODES) {
      let end = BTH_BYTES;
      for (let h = 0; h < HDR_COUNT; h++) {
        if (info.offsets[h] < 0) continue;
        assert.equal(info.offsets[h], end, `${info.name} header ${h}`);
        end += HDR_BYTES[h];
      }
      assert.equal(info.headerBytes, end);
      assert.equal(info.transport, info.opcode >= 0x60 ? 'UD' : 'RC');
      const f = info.flags;
      assert.equal(1, [OpFlag.Request, OpFlag.Response, OpFlag.Ack].filter((x) => f & x).length, info.name);
      assert.equal(/_FIRST/.test(info.name), (f & ONLY) === OpFlag.First, info.name);
      assert.equal(/_MIDDLE/.test(info.name), (f & OpFlag.Middle) !== 0, info.name);
      assert.equal(/_LAST/.test(info.name), (f & ONLY) === OpFlag.Last, info.name);
      assert.equal(/IMMEDIATE/.test(info.name), (f & OpFlag.Immediate) !== 0 && info.offsets[Hdr.ImmDt] > 0, info.name);
      assert.equal(/INVALIDATE/.test(info.name), (f & OpFlag.Invalidate) !== 0 && info.offsets[Hdr.Ieth] > 0, info.name);
      assert.equal(/SEND|IMMEDIATE/.test(info.name), (f & OpFlag.RecvWqe) !== 0, info.name);
      if (f & OpFlag.Completes) assert.ok(f & OpFlag.Last && f & OpFlag.RecvWqe, info.name);
    }
  });
});
