// The standalone flow detail widget (fb.show). The view itself lives in shared/detail_view.js so
// the flow table can embed it in its split pane; this entry wires it to the kernel: the
// `payload` trait (re-sent while a flow streams) and annotate requests answered by the kernel.
import { rpc } from "./shared/dom.js";
import { mountDetail } from "./shared/detail_view.js";
import "./detail.css";

/** @param {{ model: any, el: HTMLElement }} ctx */
function render({ model, el }) {
  const call = rpc(model);
  const frame = document.createElement("div");
  frame.className = "fb-detail-frame";
  // A fixed height: JupyterLab detaches outputs scrolled out of view, and a view that sizes
  // itself to its content would make the notebook jump when a tab changes.
  const setHeight = () => { frame.style.height = `${model.get("height") || 620}px`; };
  setHeight();
  el.append(frame);
  const view = mountDetail(frame, model.get("payload"), {
    onAnnotate: (notes) => call.call({ type: "annotate", ...notes }),
    onCode: (req) => call.call({ type: "code", ...req }),
  });
  const onPayload = () => view.update(model.get("payload"));
  model.on("change:payload", onPayload);
  model.on("change:height", setHeight);
  return () => {
    model.off("change:payload", onPayload);
    model.off("change:height", setHeight);
    call.dispose();
    view.destroy();
  };
}

export default { render };
