/**
 * Annotations on a screenshot: the shapes, drawing them, and undo/redo.
 * Pure (no DOM beyond a 2D context), so it is unit-tested.
 */

export type Tool = "pen" | "highlighter" | "arrow" | "rect" | "text";

export interface Point {
  x: number;
  y: number;
}

export type Shape =
  | { tool: "pen" | "highlighter"; color: string; width: number; points: Point[] }
  | { tool: "arrow" | "rect"; color: string; width: number; from: Point; to: Point }
  | { tool: "text"; color: string; size: number; at: Point; text: string };

/** The shapes drawn so far and those undone (for redo). Immutable: each
 * change gives a new history, which suits reactive UI state. */
export interface History {
  shapes: Shape[];
  undone: Shape[];
}

export const emptyHistory: History = { shapes: [], undone: [] };

/** A new shape; what was undone can no longer be redone. */
export function addShape(h: History, shape: Shape): History {
  return { shapes: [...h.shapes, shape], undone: [] };
}

/** Takes back the last shape (unchanged if there is none). */
export function undo(h: History): History {
  const last = h.shapes.at(-1);
  return last ? { shapes: h.shapes.slice(0, -1), undone: [...h.undone, last] } : h;
}

/** Puts back the last undone shape (unchanged if there is none). */
export function redo(h: History): History {
  const next = h.undone.at(-1);
  return next ? { shapes: [...h.shapes, next], undone: h.undone.slice(0, -1) } : h;
}

/** Draws one shape. */
export function drawShape(g: CanvasRenderingContext2D, s: Shape) {
  g.save();
  g.lineCap = "round";
  g.lineJoin = "round";
  if (s.tool === "text") {
    g.fillStyle = s.color;
    g.font = `600 ${s.size}px sans-serif`;
    g.textBaseline = "top";
    g.fillText(s.text, s.at.x, s.at.y);
  } else if ("points" in s) {
    g.strokeStyle = s.color;
    g.lineWidth = s.width;
    if (s.tool === "highlighter") g.globalAlpha = 0.35;
    g.beginPath();
    s.points.forEach((p, i) => (i === 0 ? g.moveTo(p.x, p.y) : g.lineTo(p.x, p.y)));
    if (s.points.length === 1) g.lineTo(s.points[0].x + 0.1, s.points[0].y);
    g.stroke();
  } else if (s.tool === "rect") {
    g.strokeStyle = s.color;
    g.lineWidth = s.width;
    g.strokeRect(
      Math.min(s.from.x, s.to.x),
      Math.min(s.from.y, s.to.y),
      Math.abs(s.to.x - s.from.x),
      Math.abs(s.to.y - s.from.y),
    );
  } else {
    g.strokeStyle = s.color;
    g.fillStyle = s.color;
    g.lineWidth = s.width;
    const angle = Math.atan2(s.to.y - s.from.y, s.to.x - s.from.x);
    const head = Math.max(12, s.width * 4);
    g.beginPath();
    g.moveTo(s.from.x, s.from.y);
    g.lineTo(s.to.x - Math.cos(angle) * head * 0.8, s.to.y - Math.sin(angle) * head * 0.8);
    g.stroke();
    g.beginPath();
    g.moveTo(s.to.x, s.to.y);
    g.lineTo(s.to.x - head * Math.cos(angle - Math.PI / 7), s.to.y - head * Math.sin(angle - Math.PI / 7));
    g.lineTo(s.to.x - head * Math.cos(angle + Math.PI / 7), s.to.y - head * Math.sin(angle + Math.PI / 7));
    g.closePath();
    g.fill();
  }
  g.restore();
}
