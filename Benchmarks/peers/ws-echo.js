// Node `ws` (Debian node-ws) binary echo peer; prints {"port":N}.
const WebSocket = require('ws');
const server = new WebSocket.Server({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 1 << 24 });
server.on('connection', (socket) => socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary })));
server.on('listening', () => console.log(JSON.stringify({ port: server.address().port })));
