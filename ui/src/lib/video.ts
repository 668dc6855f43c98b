/**
 * Decoded video from the app's local frame server (a token-protected
 * WebSocket on 127.0.0.1), drawn with WebGL (see video-gl.ts). Each tile
 * (participant id; "0" is the local camera) has its own canvas; only the
 * latest frame of a tile is ever drawn. Where the webview can, the frames
 * are received and drawn in a Web Worker on OffscreenCanvases
 * (video-worker.ts); otherwise on the page.
 */
import { parseFrame, TileRenderer, type Frame } from "./video-gl";
import type { FromWorker, ToWorker } from "./video-worker";

export { parseFrame, type Frame };

/** Whether this webview can hand canvases to a worker at all. */
function workerCapable(): boolean {
  return (
    typeof Worker !== "undefined" &&
    typeof OffscreenCanvas !== "undefined" &&
    typeof HTMLCanvasElement !== "undefined" &&
    "transferControlToOffscreen" in HTMLCanvasElement.prototype
  );
}

/** The connection to the frame server and the canvases it draws into. */
export class VideoFeed {
  /** Where frames are drawn: decided once the worker says whether it can. */
  mode: "pending" | "worker" | "page" = "pending";
  private worker: Worker | null = null;
  private ws: WebSocket | null = null;
  /** Canvases and the tile each shows (null: none now). */
  private wanted = new Map<HTMLCanvasElement, string | null>();
  /** Page mode: a renderer per canvas. */
  private renderers = new Map<HTMLCanvasElement, TileRenderer>();
  /** Worker mode: canvases handed to the worker, by id. */
  private transferred = new WeakMap<HTMLCanvasElement, number>();
  private nextId = 1;
  private pending = new Map<string, Frame>();
  private scheduled = false;
  private closed = false;
  private observer: ResizeObserver | null = null;
  /** Tiles that showed a picture recently, with the time of the last frame. */
  readonly lastFrame = new Map<string, number>();
  onchange: (() => void) | null = null;

  constructor(private url: string) {
    this.observer = typeof ResizeObserver !== "undefined" ? new ResizeObserver(() => this.sendSizes()) : null;
    if (!workerCapable()) {
      this.usePage();
      return;
    }
    try {
      const worker = new Worker(new URL("./video-worker.ts", import.meta.url), { type: "module" });
      worker.onmessage = (e: MessageEvent<FromWorker>) => this.fromWorker(e.data);
      worker.onerror = () => this.usePage();
      this.worker = worker;
      // A worker that never answers is given up on.
      setTimeout(() => this.mode === "pending" && this.usePage(), 3000);
    } catch {
      this.usePage();
    }
  }

  private post(m: ToWorker, transfer: Transferable[] = []) {
    this.worker?.postMessage(m, transfer);
  }

  private fromWorker(m: FromWorker) {
    if (m.type === "ready") {
      if (!m.webgl) return this.usePage();
      if (this.mode !== "pending") return;
      this.mode = "worker";
      this.post({ type: "open", url: this.url });
      for (const [canvas, tile] of this.wanted) if (tile !== null) this.show(canvas, tile);
      this.sendSizes();
    } else if (m.type === "frames") {
      this.seen(m.tiles);
    }
  }

  /** Falls back to receiving and drawing on the page. */
  private usePage() {
    if (this.mode === "page" || this.closed) return;
    const wasWorker = this.mode === "worker";
    this.worker?.terminate();
    this.worker = null;
    this.mode = "page";
    // Canvases already handed over cannot come back; the others are drawn here.
    if (wasWorker) for (const c of [...this.wanted.keys()]) if (this.transferred.has(c)) this.wanted.delete(c);
    for (const [canvas, tile] of this.wanted) if (tile !== null) this.show(canvas, tile);
    this.open();
  }

  private open() {
    if (this.closed) return;
    const ws = new WebSocket(this.url);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => this.sendSizes();
    ws.onmessage = (m) => {
      const f = parseFrame(m.data as ArrayBuffer);
      if (!f) return;
      // Latest frame wins: draw at most once per display refresh.
      this.pending.set(f.tile, f);
      if (!this.scheduled) {
        this.scheduled = true;
        requestAnimationFrame(() => this.flush());
      }
    };
    ws.onclose = () => {
      this.ws = null;
      if (!this.closed) setTimeout(() => this.open(), 1000);
    };
    this.ws = ws;
  }

  private flush() {
    this.scheduled = false;
    for (const [tile, f] of this.pending) {
      for (const [canvas, t] of this.wanted) if (t === tile) this.renderers.get(canvas)?.draw(f);
    }
    this.seen([...this.pending.keys()]);
    this.pending.clear();
  }

  private seen(tiles: string[]) {
    const now = performance.now();
    let changed = false;
    for (const tile of tiles) {
      if (!this.lastFrame.has(tile)) changed = true;
      this.lastFrame.set(tile, now);
    }
    if (changed) this.onchange?.();
  }

  private sendSizes() {
    const sizes: Record<string, [number, number]> = {};
    const dpr = window.devicePixelRatio || 1;
    for (const [canvas, tile] of this.wanted) {
      if (tile === null) continue;
      const rect = canvas.getBoundingClientRect();
      if (rect.width > 0) sizes[tile] = [Math.round(rect.width * dpr), Math.round(rect.height * dpr)];
    }
    if (this.mode === "worker") this.post({ type: "sizes", sizes });
    else if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ sizes }));
  }

  /** Starts drawing `tile` into `canvas` in the current mode. */
  private show(canvas: HTMLCanvasElement, tile: string) {
    if (this.mode === "worker") {
      let id = this.transferred.get(canvas);
      if (id === undefined) {
        id = this.nextId++;
        this.transferred.set(canvas, id);
        const offscreen = canvas.transferControlToOffscreen();
        this.post({ type: "canvas", id, canvas: offscreen }, [offscreen]);
      }
      this.post({ type: "attach", id, tile });
      canvas.dataset.renderer = "worker";
    } else if (this.mode === "page") {
      if (!this.renderers.has(canvas)) {
        try {
          this.renderers.set(canvas, new TileRenderer(canvas));
        } catch {
          return;
        }
      }
      canvas.dataset.renderer = "page";
    }
  }

  /** Draws a tile's frames into `canvas` until the returned function is
   * called (with `release`, the canvas is going away for good). */
  attach(tile: string, canvas: HTMLCanvasElement): (release?: boolean) => void {
    this.wanted.set(canvas, tile);
    this.show(canvas, tile);
    this.observer?.observe(canvas);
    this.sendSizes();
    return (release = false) => {
      this.observer?.unobserve(canvas);
      const id = this.transferred.get(canvas);
      if (release) {
        this.wanted.delete(canvas);
        this.renderers.get(canvas)?.release();
        this.renderers.delete(canvas);
        if (id !== undefined) this.post({ type: "release", id });
      } else {
        this.wanted.set(canvas, null);
        if (id !== undefined) this.post({ type: "detach", id });
      }
      this.sendSizes();
    };
  }

  /** Whether a tile had a frame in the last two seconds. */
  isLive(tile: string): boolean {
    const t = this.lastFrame.get(tile);
    return t !== undefined && performance.now() - t < 2000;
  }

  close() {
    this.closed = true;
    this.post({ type: "close" });
    this.worker?.terminate();
    this.ws?.close();
    this.observer?.disconnect();
  }
}
