/**
 * The video worker: receives frames from the local frame server and draws
 * them into canvases handed over as OffscreenCanvas, so decoding messages
 * and uploading textures never block the page. The page keeps layout and
 * tells the worker each tile's size; the worker tells the page which tiles
 * have pictures.
 */
import { parseFrame, TileRenderer, type Frame } from "./video-gl";

/** Messages from the page. */
export type ToWorker =
  | { type: "open"; url: string }
  | { type: "canvas"; id: number; canvas: OffscreenCanvas }
  | { type: "attach"; id: number; tile: string }
  | { type: "detach"; id: number }
  | { type: "release"; id: number }
  | { type: "sizes"; sizes: Record<string, [number, number]> }
  | { type: "close" };

/** Messages to the page. */
export type FromWorker = { type: "ready"; webgl: boolean } | { type: "frames"; tiles: string[] };

const scope = self as unknown as {
  postMessage(m: FromWorker): void;
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
  requestAnimationFrame?: (cb: () => void) => number;
};

const canvases = new Map<number, { renderer: TileRenderer; tile: string | null }>();
const pending = new Map<string, Frame>();
let ws: WebSocket | null = null;
let url = "";
let closed = false;
let scheduled = false;
let sizes = "{}";
/** Tiles with a frame since the page was last told. */
const fresh = new Set<string>();
let lastReport = 0;

function connect() {
  if (closed || !url) return;
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => socket.send(sizes);
  socket.onmessage = (m) => {
    const f = parseFrame(m.data as ArrayBuffer);
    if (!f) return;
    // Latest frame wins: draw at most once per display refresh.
    pending.set(f.tile, f);
    if (!scheduled) {
      scheduled = true;
      const later = scope.requestAnimationFrame ?? ((cb: () => void) => setTimeout(cb, 16));
      later(flush);
    }
  };
  socket.onclose = () => {
    ws = null;
    if (!closed) setTimeout(connect, 1000);
  };
  ws = socket;
}

function flush() {
  scheduled = false;
  for (const [tile, f] of pending) {
    for (const c of canvases.values()) if (c.tile === tile) c.renderer.draw(f);
    fresh.add(tile);
  }
  pending.clear();
  const now = performance.now();
  if (fresh.size && now - lastReport > 250) {
    lastReport = now;
    scope.postMessage({ type: "frames", tiles: [...fresh] });
    fresh.clear();
  }
}

scope.onmessage = (e) => {
  const m = e.data;
  switch (m.type) {
    case "open":
      url = m.url;
      connect();
      break;
    case "canvas":
      try {
        canvases.set(m.id, { renderer: new TileRenderer(m.canvas), tile: null });
      } catch {
        scope.postMessage({ type: "ready", webgl: false });
      }
      break;
    case "attach": {
      const c = canvases.get(m.id);
      if (c) c.tile = m.tile;
      break;
    }
    case "detach": {
      const c = canvases.get(m.id);
      if (c) c.tile = null;
      break;
    }
    case "release":
      canvases.get(m.id)?.renderer.release();
      canvases.delete(m.id);
      break;
    case "sizes":
      sizes = JSON.stringify({ sizes: m.sizes });
      if (ws?.readyState === WebSocket.OPEN) ws.send(sizes);
      break;
    case "close":
      closed = true;
      ws?.close();
      break;
  }
};

/** Whether WebGL works on an OffscreenCanvas here. */
function probe(): boolean {
  try {
    return !!new OffscreenCanvas(2, 2).getContext("webgl");
  } catch {
    return false;
  }
}
scope.postMessage({ type: "ready", webgl: probe() });
