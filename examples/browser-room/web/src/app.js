// The browser-room page: joins a room through the server's WebSocket, publishes camera
// (simulcast, 3 layers) and microphone with mediasoup-client, shows a tile per remote peer
// with the worker serving each consumer, its bitrate and resolution, and a data-channel chat.
//
// Query string: ?room=NAME&peer=ID&name=SHOWN&width=960&height=540&fps=30
// Tests read window.mafaldaRoom (status, snapshot, chat) and call its methods.
import { Device } from 'mediasoup-client';

const query = new URLSearchParams(location.search);
const roomId = query.get('room') || 'lobby';
const peerId = query.get('peer') || `peer-${Math.random().toString(36).slice(2, 8)}`;
const displayName = query.get('name') || peerId;
const width = Number(query.get('width') || 960);
const height = Number(query.get('height') || 540);
const fps = Number(query.get('fps') || 30);

const $ = (id) => document.getElementById(id);

// What tests (and curious users, in the console) can read and drive.
const room = {
  roomId,
  peerId,
  status: 'connecting',
  snapshot: { consumers: [], producers: [], dataConsumers: 0, peers: [] },
  chat: [],
  sendChat,
  request,
  pause: (kind) => setProducerPaused(kind, true),
  resume: (kind) => setProducerPaused(kind, false),
  closeProducer,
};
window.mafaldaRoom = room;

function setStatus(text) {
  room.status = text;
  $('status').textContent = text;
}

// --- signalling -----------------------------------------------------------------------------

const socket = new WebSocket(
  `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws?room=${encodeURIComponent(roomId)}&peer=${encodeURIComponent(peerId)}`,
);
const pending = new Map();
let nextId = 1;

function request(method, data = {}) {
  const id = nextId++;
  socket.send(JSON.stringify({ kind: 'request', id, method, data }));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      pending.delete(id);
      reject(new Error(`${method}: no answer within 15 s`));
    }, 15000);
    pending.set(id, { resolve, reject, timer });
  });
}

function answer(id, result) {
  const message = result instanceof Error
    ? { kind: 'response', id, ok: false, error: String(result.message || result) }
    : { kind: 'response', id, ok: true, data: result || {} };
  socket.send(JSON.stringify(message));
}

socket.addEventListener('message', async (event) => {
  let message;
  try {
    message = JSON.parse(event.data);
  } catch (error) {
    console.error('unparsable message', error);
    return;
  }
  if (message.kind === 'response') {
    const waiting = pending.get(message.id);
    if (!waiting) return;
    pending.delete(message.id);
    clearTimeout(waiting.timer);
    if (message.ok) waiting.resolve(message.data);
    else waiting.reject(new Error(message.error));
  } else if (message.kind === 'request') {
    try {
      answer(message.id, await onServerRequest(message.method, message.data));
    } catch (error) {
      console.error(message.method, error);
      answer(message.id, error);
    }
  } else if (message.kind === 'notification') {
    onNotification(message.method, message.data);
  }
});
socket.addEventListener('close', () => {
  if (!room.status.startsWith('error')) setStatus('disconnected');
});

// --- media ----------------------------------------------------------------------------------

const device = new Device();
let sendTransport;
let recvTransport;
let chatProducer;
const producers = new Map(); // kind -> mediasoup-client Producer
const consumers = new Map(); // consumer id -> { consumer, peerId, tile, last }
const dataConsumers = new Map();
// Consumers the server closed while the page was still creating them (closed once created).
const closedEarly = new Set();
const peers = new Map(); // peer id -> display name
let placement = new Map(); // consumer id -> { cell, worker } from the stats endpoint

function wireTransport(transport) {
  transport.on('connect', ({ dtlsParameters }, callback, errback) => {
    request('connectWebRtcTransport', { transportId: transport.id, dtlsParameters }).then(callback, errback);
  });
  transport.on('connectionstatechange', (state) => console.log(`transport ${transport.id}: ${state}`));
}

async function createTransport(direction) {
  const info = await request('createWebRtcTransport', {
    producing: direction === 'send',
    consuming: direction === 'recv',
    // mediasoup-client 3.24 has no Device.sctpCapabilities any more; browsers open 1024 streams.
    sctpCapabilities: { numStreams: { OS: 1024, MIS: 1024 } },
  });
  const transport = direction === 'send' ? device.createSendTransport(info) : device.createRecvTransport(info);
  wireTransport(transport);
  return transport;
}

async function join() {
  const routerRtpCapabilities = await request('getRouterRtpCapabilities');
  await device.load({ routerRtpCapabilities });
  sendTransport = await createTransport('send');
  sendTransport.on('produce', ({ kind, rtpParameters, appData }, callback, errback) => {
    request('produce', { transportId: sendTransport.id, kind, rtpParameters, appData }).then(callback, errback);
  });
  sendTransport.on('producedata', ({ sctpStreamParameters, label, protocol }, callback, errback) => {
    request('produceData', { transportId: sendTransport.id, sctpStreamParameters, label, protocol }).then(
      callback,
      errback,
    );
  });
  recvTransport = await createTransport('recv');
  const joined = await request('join', { displayName, rtpCapabilities: device.rtpCapabilities });
  for (const peer of joined.peers) addPeer(peer.peerId, peer.displayName);
  setStatus('joined');

  const stream = await navigator.mediaDevices.getUserMedia({
    audio: true,
    video: { width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: fps } },
  });
  const videoTrack = stream.getVideoTracks()[0];
  const audioTrack = stream.getAudioTracks()[0];
  localTile(videoTrack);
  producers.set(
    'video',
    await sendTransport.produce({
      track: videoTrack,
      encodings: [
        { rid: 'r0', scaleResolutionDownBy: 4, maxBitrate: 150000 },
        { rid: 'r1', scaleResolutionDownBy: 2, maxBitrate: 500000 },
        { rid: 'r2', scaleResolutionDownBy: 1, maxBitrate: 1500000 },
      ],
      codecOptions: { videoGoogleStartBitrate: 1000 },
      appData: { source: 'camera' },
    }),
  );
  producers.set('audio', await sendTransport.produce({ track: audioTrack, appData: { source: 'mic' } }));
  chatProducer = await sendTransport.produceData({ ordered: true, label: 'chat' });
  setStatus('publishing');
}

async function setProducerPaused(kind, paused) {
  const producer = producers.get(kind);
  if (!producer) throw new Error(`no ${kind} producer`);
  if (paused) producer.pause();
  else producer.resume();
  await request(paused ? 'pauseProducer' : 'resumeProducer', { producerId: producer.id });
}

async function closeProducer(kind) {
  const producer = producers.get(kind);
  if (!producer) throw new Error(`no ${kind} producer`);
  producer.close();
  producers.delete(kind);
  await request('closeProducer', { producerId: producer.id });
}

function sendChat(text) {
  if (!chatProducer || chatProducer.readyState !== 'open') throw new Error('chat channel not open');
  chatProducer.send(text);
  logChat(displayName, text);
}

function logChat(from, text) {
  room.chat.push({ from, text });
  const line = document.createElement('div');
  line.textContent = `${from}: ${text}`;
  $('chat-log').append(line);
  $('chat-log').scrollTop = $('chat-log').scrollHeight;
}

// --- what the server asks and tells ----------------------------------------------------------

async function onServerRequest(method, data) {
  if (method === 'newConsumer') {
    const consumer = await recvTransport.consume({
      id: data.id,
      producerId: data.producerId,
      kind: data.kind,
      rtpParameters: data.rtpParameters,
      appData: { ...data.appData, peerId: data.peerId },
    });
    if (closedEarly.delete(consumer.id)) {
      consumer.close();
      throw new Error(`consumer ${consumer.id} was closed meanwhile`);
    }
    const tile = remoteTile(data.peerId);
    attach(tile, consumer);
    consumers.set(consumer.id, { consumer, peerId: data.peerId, tile, producerPaused: data.producerPaused, last: null });
    return {};
  }
  if (method === 'newDataConsumer') {
    const dataConsumer = await recvTransport.consumeData({
      id: data.id,
      dataProducerId: data.dataProducerId,
      sctpStreamParameters: data.sctpStreamParameters,
      label: data.label,
      protocol: data.protocol,
    });
    if (closedEarly.delete(dataConsumer.id)) {
      dataConsumer.close();
      throw new Error(`data consumer ${dataConsumer.id} was closed meanwhile`);
    }
    dataConsumer.on('message', (message) => logChat(peers.get(data.peerId) || data.peerId, String(message)));
    dataConsumers.set(dataConsumer.id, dataConsumer);
    return {};
  }
  throw new Error(`unknown request ${method}`);
}

function onNotification(method, data) {
  switch (method) {
    case 'newPeer':
      addPeer(data.peerId, data.displayName);
      break;
    case 'peerClosed':
      peers.delete(data.peerId);
      document.querySelector(`.tile[data-peer="${CSS.escape(data.peerId)}"]`)?.remove();
      break;
    case 'consumerClosed': {
      const entry = consumers.get(data.consumerId);
      if (!entry) {
        closedEarly.add(data.consumerId);
        break;
      }
      entry.consumer.close();
      consumers.delete(data.consumerId);
      detach(entry.tile, entry.consumer);
      break;
    }
    case 'consumerPaused':
    case 'consumerResumed': {
      const entry = consumers.get(data.consumerId);
      if (!entry) break;
      entry.producerPaused = method === 'consumerPaused';
      if (entry.consumer.kind === 'video') entry.tile.classList.toggle('paused', entry.producerPaused);
      break;
    }
    case 'dataConsumerClosed':
      if (!dataConsumers.has(data.dataConsumerId)) closedEarly.add(data.dataConsumerId);
      dataConsumers.get(data.dataConsumerId)?.close();
      dataConsumers.delete(data.dataConsumerId);
      break;
    case 'consumerLayersChanged':
      break;
    case 'reconnect':
      // The server lost the worker under this page's transports: join again (a fresh page
      // is a fresh peer to the server, placed on a worker that serves).
      console.log('reconnect', data.reason);
      setStatus('reconnecting');
      socket.close();
      location.reload();
      break;
    case 'error':
      setStatus(`error: ${data.reason}`);
      break;
    default:
      console.log('notification', method, data);
  }
}

function addPeer(id, name) {
  peers.set(id, name || id);
  remoteTile(id);
}

// --- tiles ----------------------------------------------------------------------------------

function tileFor(id, name, local) {
  let tile = document.querySelector(`.tile[data-peer="${CSS.escape(id)}"]`);
  if (tile) return tile;
  tile = document.createElement('div');
  tile.className = local ? 'tile local' : 'tile';
  tile.dataset.peer = id;
  const video = document.createElement('video');
  video.autoplay = true;
  video.muted = true;
  video.playsInline = true;
  const audio = document.createElement('audio');
  audio.autoplay = true;
  const label = document.createElement('div');
  label.className = 'name';
  label.textContent = local ? `${name} (you)` : name;
  const caption = document.createElement('div');
  caption.className = 'caption';
  tile.append(video, audio, label, caption);
  $('tiles').append(tile);
  return tile;
}

function localTile(track) {
  const tile = tileFor(peerId, displayName, true);
  tile.querySelector('video').srcObject = new MediaStream([track]);
}

function remoteTile(id) {
  return tileFor(id, peers.get(id) || id, false);
}

function attach(tile, consumer) {
  const element = tile.querySelector(consumer.kind === 'video' ? 'video' : 'audio');
  element.srcObject = new MediaStream([consumer.track]);
  element.play().catch(() => {});
}

function detach(tile, consumer) {
  const element = tile.querySelector(consumer.kind === 'video' ? 'video' : 'audio');
  element.srcObject = null;
}

// --- stats: decoded frames, bitrate, resolution, and the worker serving each consumer --------

async function refreshPlacement() {
  try {
    const stats = await (await fetch('/api/stats')).json();
    const next = new Map();
    for (const r of stats.rooms) {
      if (r.id !== roomId) continue;
      for (const p of r.peers) {
        if (p.id !== peerId) continue;
        for (const c of p.consumers) next.set(c.id, { ...c.where, from: c.producerWhere });
      }
    }
    placement = next;
    $('workers').textContent = `${stats.workers.length} worker(s): ${stats.workers
      .map((w) => `w${w.id} ${Math.round(w.cpu * 100)}%`)
      .join(' · ')}`;
  } catch (error) {
    console.warn('stats endpoint', error);
  }
}

async function inbound(consumer) {
  const report = await consumer.getStats();
  for (const stat of report.values()) {
    if (stat.type === 'inbound-rtp') return stat;
  }
  return null;
}

async function refreshSnapshot() {
  const now = performance.now();
  const rows = [];
  const captions = new Map();
  for (const [id, entry] of consumers) {
    const stat = await inbound(entry.consumer).catch(() => null);
    const bytes = stat?.bytesReceived || 0;
    const frames = stat?.framesDecoded || 0;
    const previous = entry.last;
    const seconds = previous ? (now - previous.at) / 1000 : 0;
    const kbps = seconds > 0 ? Math.round(((bytes - previous.bytes) * 8) / 1000 / seconds) : 0;
    const fps = seconds > 0 ? Math.round((frames - previous.frames) / seconds) : 0;
    entry.last = { at: now, bytes, frames };
    const where = placement.get(id) || null;
    const row = {
      id,
      peerId: entry.peerId,
      producerId: entry.consumer.producerId,
      kind: entry.consumer.kind,
      producerPaused: entry.producerPaused,
      packetsReceived: stat?.packetsReceived || 0,
      bytesReceived: bytes,
      framesDecoded: frames,
      frameWidth: stat?.frameWidth || 0,
      frameHeight: stat?.frameHeight || 0,
      totalSamplesReceived: stat?.totalSamplesReceived || 0,
      kbps,
      fps,
      where,
    };
    rows.push(row);
    const lines = captions.get(entry.tile) || [];
    const piped = where?.from && where.from.cell !== where.cell ? `, piped from cell ${where.from.cell}` : '';
    const at = where ? `worker ${where.worker?.slice(0, 8) ?? '?'} (cell ${where.cell}${piped})` : 'worker ?';
    lines.push(
      row.kind === 'video'
        ? `video · ${at} · ${row.frameWidth}×${row.frameHeight} · ${kbps} kbps · ${fps} fps`
        : `audio · ${at} · ${kbps} kbps`,
    );
    captions.set(entry.tile, lines);
  }
  for (const [tile, lines] of captions) tile.querySelector('.caption').textContent = lines.join('\n');
  const producerRows = [];
  for (const [kind, producer] of producers) {
    const report = await producer.getStats().catch(() => new Map());
    const layers = [...report.values()].filter((s) => s.type === 'outbound-rtp');
    producerRows.push({
      kind,
      id: producer.id,
      paused: producer.paused,
      layers: layers.length,
      widths: layers.map((s) => s.frameWidth || 0).sort((a, b) => a - b),
    });
  }
  room.snapshot = {
    consumers: rows,
    producers: producerRows,
    dataConsumers: dataConsumers.size,
    peers: [...peers.keys()],
    updatedAt: Date.now(),
  };
}

async function statsLoop() {
  for (;;) {
    await refreshPlacement();
    await refreshSnapshot();
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

// --- controls -------------------------------------------------------------------------------

$('chat-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = $('chat-input');
  if (!input.value.trim()) return;
  try {
    sendChat(input.value.trim());
    input.value = '';
  } catch (error) {
    setStatus(`error: ${error.message}`);
  }
});
$('toggle-video').addEventListener('click', async (event) => {
  const paused = !producers.get('video')?.paused;
  await setProducerPaused('video', paused);
  event.target.textContent = paused ? 'resume camera' : 'pause camera';
});
$('toggle-audio').addEventListener('click', async (event) => {
  const paused = !producers.get('audio')?.paused;
  await setProducerPaused('audio', paused);
  event.target.textContent = paused ? 'unmute' : 'mute';
});

socket.addEventListener('open', () => {
  join().catch((error) => {
    console.error(error);
    setStatus(`error: ${error.message}`);
  });
  statsLoop();
});
