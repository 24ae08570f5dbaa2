// The notebook widget (anywidget): the llmviz page in an iframe of its own, so that several widgets share a
// notebook without sharing anything. The page asks for its data with messages; this relays them to the
// Python kernel and back, and syncs the widget's state (text, selected, step) both ways. No network.
export default {
  render({ model, el }) {
    const frame = document.createElement("iframe");
    frame.style.cssText = "width: 100%; height: 680px; border: 1px solid #dee2e6; border-radius: 4px;";
    frame.title = "llmviz";
    frame.srcdoc = model.get("_page");
    el.appendChild(frame);
    const toPage = (message, transfer) => frame.contentWindow?.postMessage(message, "*", transfer || []);
    const onPage = (e) => {
      if (e.source !== frame.contentWindow || !e.data || typeof e.data !== "object") return;
      const m = e.data;
      if (m.llmviz === "request") {
        model.send({ kind: "request", id: m.id, url: m.url, method: m.method, body: m.body });
      } else if (m.llmviz === "state" && ["selected", "step"].includes(m.key)) {
        model.set(m.key, m.value);
        model.save_changes();
      }
    };
    window.addEventListener("message", onPage);
    const onKernel = (msg, buffers) => {
      if (msg.kind !== "response") return;
      const b = buffers && buffers[0];
      const body = b ? b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) : new ArrayBuffer(0);
      toPage({ llmviz: "response", id: msg.id, status: msg.status, type: msg.type, body }, [body]);
    };
    model.on("msg:custom", onKernel);
    const onText = () => toPage({ llmviz: "input", text: model.get("text") });
    model.on("change:text", onText);
    return () => {
      window.removeEventListener("message", onPage);
      model.off("msg:custom", onKernel);
      model.off("change:text", onText);
    };
  },
};
