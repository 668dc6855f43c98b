import { mount } from "svelte";
import App from "./App.svelte";
import "./app.css";
import { inApp, tauriBackend, type Backend } from "./lib/api";

async function backend(): Promise<Backend> {
  if (inApp()) return tauriBackend;
  if (import.meta.env.DEV) return (await import("./lib/demo")).demoBackend();
  throw new Error("Conclave's UI runs inside the Conclave app.");
}

const target = document.getElementById("app");
if (target) {
  backend().then(
    (b) => mount(App, { target, props: { backend: b } }),
    (e: unknown) => {
      target.textContent = String(e);
    },
  );
}
