/**
 * I420 frames drawn with WebGL: the planes go up as three luminance
 * textures and a shader converts YUV to RGB (BT.601, limited range). Used on
 * the page and in the video worker alike.
 */

const VERTEX = `
attribute vec2 pos;
varying vec2 uv;
void main() {
  uv = vec2((pos.x + 1.0) / 2.0, (1.0 - pos.y) / 2.0);
  gl_Position = vec4(pos, 0.0, 1.0);
}`;

const FRAGMENT = `
precision mediump float;
varying vec2 uv;
uniform sampler2D ty, tu, tv;
void main() {
  float y = 1.1643 * (texture2D(ty, uv).r - 0.0625);
  float u = texture2D(tu, uv).r - 0.5;
  float v = texture2D(tv, uv).r - 0.5;
  gl_FragColor = vec4(y + 1.5958 * v, y - 0.39173 * u - 0.8129 * v, y + 2.017 * u, 1.0);
}`;

/** A parsed frame message. */
export interface Frame {
  tile: string;
  width: number;
  height: number;
  y: Uint8Array;
  u: Uint8Array;
  v: Uint8Array;
}

/** Parses one binary frame message (`CVF1`, tile u64, width u32, height u32, planes). */
export function parseFrame(data: ArrayBuffer): Frame | null {
  if (data.byteLength < 20) return null;
  const view = new DataView(data);
  const magic = String.fromCharCode(view.getUint8(0), view.getUint8(1), view.getUint8(2), view.getUint8(3));
  if (magic !== "CVF1") return null;
  const tile = view.getBigUint64(4).toString();
  const width = view.getUint32(12);
  const height = view.getUint32(16);
  const ySize = width * height;
  const cSize = (width / 2) * (height / 2);
  if (width % 2 || height % 2 || data.byteLength !== 20 + ySize + 2 * cSize) return null;
  return {
    tile,
    width,
    height,
    y: new Uint8Array(data, 20, ySize),
    u: new Uint8Array(data, 20 + ySize, cSize),
    v: new Uint8Array(data, 20 + ySize + cSize, cSize),
  };
}

/** Draws I420 frames into one canvas, on the page or in a worker. */
export class TileRenderer {
  private gl: WebGLRenderingContext;
  private textures: WebGLTexture[] = [];

  constructor(readonly canvas: HTMLCanvasElement | OffscreenCanvas) {
    const gl = canvas.getContext("webgl", { antialias: false, depth: false, preserveDrawingBuffer: true }) as WebGLRenderingContext | null;
    if (!gl) throw new Error("WebGL is not available");
    this.gl = gl;
    const compile = (type: number, src: string) => {
      const s = gl.createShader(type)!;
      gl.shaderSource(s, src);
      gl.compileShader(s);
      return s;
    };
    const program = gl.createProgram()!;
    gl.attachShader(program, compile(gl.VERTEX_SHADER, VERTEX));
    gl.attachShader(program, compile(gl.FRAGMENT_SHADER, FRAGMENT));
    gl.linkProgram(program);
    gl.useProgram(program);
    const buffer = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    const pos = gl.getAttribLocation(program, "pos");
    gl.enableVertexAttribArray(pos);
    gl.vertexAttribPointer(pos, 2, gl.FLOAT, false, 0, 0);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    ["ty", "tu", "tv"].forEach((name, i) => {
      const t = gl.createTexture()!;
      gl.activeTexture(gl.TEXTURE0 + i);
      gl.bindTexture(gl.TEXTURE_2D, t);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
      gl.uniform1i(gl.getUniformLocation(program, name), i);
      this.textures.push(t);
    });
  }

  draw(f: Frame) {
    const gl = this.gl;
    if (this.canvas.width !== f.width || this.canvas.height !== f.height) {
      this.canvas.width = f.width;
      this.canvas.height = f.height;
    }
    gl.viewport(0, 0, f.width, f.height);
    const planes: [Uint8Array, number, number][] = [
      [f.y, f.width, f.height],
      [f.u, f.width / 2, f.height / 2],
      [f.v, f.width / 2, f.height / 2],
    ];
    planes.forEach(([data, w, h], i) => {
      gl.activeTexture(gl.TEXTURE0 + i);
      gl.bindTexture(gl.TEXTURE_2D, this.textures[i]);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.LUMINANCE, w, h, 0, gl.LUMINANCE, gl.UNSIGNED_BYTE, data);
    });
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
  }

  /** Gives the GPU context back (the canvas is going away). */
  release() {
    this.gl.getExtension("WEBGL_lose_context")?.loseContext();
  }
}

