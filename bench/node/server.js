// The kind of room-broadcast service teams hand-roll on Node's `ws`
// package. For what the benchmark uses (`connected`, `room:join`,
// `message:send` -> `message:new` and its reply) it sends frames with the
// same fields, in the same order, as realtime-server; what it does not do
// (no JWT, no storage, no limits, no members list on join) is listed in
// docs/benchmarks.md. Usage: node server.js <port>
const { randomUUID } = require('crypto');
const { WebSocketServer } = require('ws');
const port = Number(process.argv[2] || 0);
const wss = new WebSocketServer({ host: '127.0.0.1', port });
const rooms = new Map();
const seqs = new Map();
let users = 0;
wss.on('listening', () => console.log(`listening on 127.0.0.1:${wss.address().port}`));
wss.on('connection', (ws, req) => {
  req.socket.setNoDelay(true);
  const userId = `u${users++}`;
  ws.send(JSON.stringify({
    type: 'connected', connectionId: randomUUID(), userId, serverTime: new Date().toISOString(),
    protocolVersion: 1, heartbeatIntervalMs: 25000,
  }));
  ws.on('message', (data) => {
    let v;
    try { v = JSON.parse(data); } catch { return; }
    const room = v.room || '';
    if (v.type === 'room:join') {
      if (!rooms.has(room)) rooms.set(room, new Set());
      rooms.get(room).add(ws);
      const data = { members: [], missed: [], recovered: false, room, seq: seqs.get(room) || 0 };
      ws.send(JSON.stringify({ type: 'reply', id: v.id, ok: true, data }));
    } else if (v.type === 'message:send') {
      const seq = (seqs.get(room) || 0) + 1;
      seqs.set(room, seq);
      const messageId = randomUUID();
      const timestamp = new Date().toISOString();
      const frame = JSON.stringify({
        type: 'message:new', room, messageId, seq, userId, content: v.content,
        threadId: null, metadata: null, timestamp,
      });
      for (const m of rooms.get(room) || []) m.send(frame);
      if (v.id !== undefined) {
        ws.send(JSON.stringify({ type: 'reply', id: v.id, ok: true, data: { messageId, seq, timestamp } }));
      }
    }
  });
  ws.on('close', () => { for (const s of rooms.values()) s.delete(ws); });
});
