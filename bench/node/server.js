// The kind of room-broadcast service teams hand-roll on Node's `ws`
// package, speaking the same frames as realtime-server for what the
// benchmark uses. Usage: node server.js <port>
const { WebSocketServer } = require('ws');
const port = Number(process.argv[2] || 0);
const wss = new WebSocketServer({ host: '127.0.0.1', port });
const rooms = new Map();
const seqs = new Map();
wss.on('listening', () => console.log(`listening on 127.0.0.1:${wss.address().port}`));
wss.on('connection', (ws, req) => {
  req.socket.setNoDelay(true);
  ws.send('{"type":"connected"}');
  ws.on('message', (data) => {
    let v;
    try { v = JSON.parse(data); } catch { return; }
    const room = v.room || '';
    if (v.type === 'room:join') {
      if (!rooms.has(room)) rooms.set(room, new Set());
      rooms.get(room).add(ws);
      ws.send(JSON.stringify({ type: 'reply', id: v.id, ok: true, data: { room } }));
    } else if (v.type === 'message:send') {
      const seq = (seqs.get(room) || 0) + 1;
      seqs.set(room, seq);
      const frame = JSON.stringify({ type: 'message:new', room, seq, content: v.content });
      for (const m of rooms.get(room) || []) m.send(frame);
      if (v.id !== undefined) ws.send(JSON.stringify({ type: 'reply', id: v.id, ok: true, data: { seq } }));
    }
  });
  ws.on('close', () => { for (const s of rooms.values()) s.delete(ws); });
});
