// The transport baseline of bench:writes as its own process: a bare WebSocket server (ws, no
// compression, like the session endpoint) that answers every frame with a frame of the size an
// ack of it would be — nothing decoded, validated or stored. Prints "READY <url>".
import { WebSocketServer } from 'ws';

const ackBytesPerCommand = Number(process.argv[2] ?? '96');
const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });
wss.on('connection', (ws) => {
  ws.on('message', (data: Buffer) => {
    // A frame of n commands is about n × 60 bytes of MessagePack: answer with n acks' worth.
    const n = Math.max(1, Math.round(data.length / 60));
    ws.send(Buffer.alloc(n * ackBytesPerCommand, 0xc0));
  });
});
wss.on('listening', () => process.stdout.write(`READY http://127.0.0.1:${(wss.address() as { port: number }).port}\n`));
for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => process.exit(0));
