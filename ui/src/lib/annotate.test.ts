import { describe, expect, it } from "vitest";
import { addShape, emptyHistory, redo, undo, type Shape } from "./annotate";

const rect = (n: number): Shape => ({ tool: "rect", color: "#f00", width: 4, from: { x: n, y: n }, to: { x: n + 10, y: n + 10 } });

describe("annotation history", () => {
  it("undo and redo walk the history; a new shape clears redo", () => {
    let h = addShape(addShape(emptyHistory, rect(1)), rect(2));
    h = undo(h);
    expect(h.shapes).toEqual([rect(1)]);
    expect(h.undone).toEqual([rect(2)]);
    h = redo(h);
    expect(h.shapes).toEqual([rect(1), rect(2)]);
    expect(redo(h)).toBe(h);
    h = addShape(undo(h), rect(3));
    expect(h.undone).toEqual([]);
    expect(h.shapes).toEqual([rect(1), rect(3)]);
    expect(undo(undo(undo(h))).shapes).toEqual([]);
    expect(emptyHistory.shapes).toEqual([]);
  });
});
