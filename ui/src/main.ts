import { mount } from "svelte";
import App from "./App.svelte";
import ShareBar from "./lib/components/ShareBar.svelte";
import "./app.css";
import { inApp, tauriBackend, type Backend } from "./lib/api";

async function backend(): Promise<Backend> {
  if (inApp()) return tauriBackend;
  if (import.meta.env.DEV) return (await import("./lib/demo")).demoBackend();
  throw new Error("Conclave's UI runs inside the Conclave app.");
}

const target = document.getElementById("app");
// The always-on-top sharing bar is a second window of the same UI.
const view = new URLSearchParams(window.location.search).get("view");
if (target) {
  backend().then(
    (b) =>
      view === "share-bar"
        ? mount(ShareBar, { target, props: { commands: b.commands } })
        : mount(App, { target, props: { backend: b } }),
    (e: unknown) => {
      target.textContent = String(e);
    },
  );
}
