"""Train: choose the settings, press Start, and watch the network learn."""

import streamlit as st

from core.augment import preview
from core.config import ConfigError, TrainConfig, problems
from core.worker import ensure_worker
from dashboard import curves, images, settings, state

st.title("Train a network")
st.caption(
    "Hover the ? beside a setting to see what it does. Start queues the run; it trains in the "
    "background, so you can look at other pages (or close this tab) while it learns."
)
store = state.store()
url_errors = settings.init_form()
for error in url_errors:
    st.warning(f"The link's setting {error} was ignored.")

form_column, live_column = st.columns([5, 6], gap="large")

with form_column:
    settings.preset_picker()
    slots = settings.form()
    try:
        cfg = TrainConfig.from_dict(settings.values())
        found = problems(cfg, train_pool=len(state.dataset(cfg.data_dir).train_labels))
    except ConfigError as exc:
        cfg, found = None, [exc]
    for problem in found:
        slot = slots.get(problem.field)
        if slot is not None:
            slot.error(problem.message, icon=":material/error:")
    if cfg is not None and cfg.augments and not found:
        with slots["_preview"]:
            data = state.dataset(cfg.data_dir)
            grid = preview(data.train_images[:6], cfg, variants=7, seed=0)
            st.plotly_chart(
                images.digit_grid(grid.reshape(-1, 28, 28), cols=8, tile_px=52),
                key="augment_preview",
            )
            st.caption("Each row: a training digit, then seven random versions the network sees.")
    if cfg is not None:
        st.query_params.update(settings.to_query(cfg))
        for name in settings.FIELDS:
            if name not in settings.to_query(cfg) and name in st.query_params:
                del st.query_params[name]
    name = st.text_input("Run name", placeholder="optional, e.g. adam-lr-0.001")
    if st.button("Start", type="primary", icon=":material/play_arrow:", disabled=bool(found)):
        run = store.create(cfg, name)
        ensure_worker(store)
        st.session_state["watch_run"] = run.id
        st.toast(f"Run #{run.id} queued; it starts as soon as the trainer is free.")
    if found:
        st.caption("Fix the settings marked in red to start.")

    with st.expander("Compare settings: vary one", icon=":material/compare_arrows:"):
        st.caption(
            "Queue one run per value, everything else as above, and compare them side by side."
        )
        field = st.selectbox("Setting to vary", settings.VARY_FIELDS, key="vary_field")
        layer_list = isinstance(getattr(settings.DEFAULTS, field), list)
        text = st.text_input(
            "Values",
            placeholder="e.g. 128,64; 256; 32,32" if layer_list else "e.g. 0.01, 0.1, 1",
            key="vary_values",
            help="Two to five values, separated by "
            + ("semicolons (each value is a list of layer sizes)" if layer_list else "commas"),
        )
        if st.button("Queue and compare", disabled=cfg is None or bool(found)):
            try:
                configs = settings.vary(cfg, field, text)
                for c in configs:
                    bad = problems(c)
                    if bad:
                        raise bad[0]
            except ConfigError as exc:
                st.error(f"{exc.field}: {exc.message}")
            else:
                prefix = name or f"vary-{field}"
                runs = [
                    store.create(c, f"{prefix} {field}={getattr(c, field)}", tags=[f"vary:{field}"])
                    for c in configs
                ]
                ensure_worker(store)
                st.switch_page(
                    "views/compare.py", query_params={"runs": ",".join(str(r.id) for r in runs)}
                )

with live_column:
    runs = store.list()
    if not runs:
        st.info("No runs yet. Choose the settings and press **Start** to train your first network.")
    else:
        ids = [r.id for r in runs]
        active = [r.id for r in runs if r.active]
        wanted = st.session_state.get("watch_run") or (active[-1] if active else ids[0])
        labels = {r.id: f"#{r.id} {r.name} · {r.status}" for r in runs}
        watched = st.selectbox(
            "Run", ids, index=ids.index(wanted) if wanted in ids else 0,
            format_func=labels.get, key="watch_select",
        )  # fmt: skip
        st.session_state["watch_run"] = watched

        @st.fragment(run_every=1.0)
        def live(run_id: int) -> None:
            """The watched run's progress and curves, redrawn every second without a page reload."""
            run = store.get(run_id)
            epochs = store.epochs(run_id)
            p = run.progress
            if run.status == "queued":
                st.info("Queued: it starts when the runs before it are done.")
            elif run.status == "running" and p:
                done = (p["epoch"] - 1 + p["batch"] / p["batches"]) / p["epochs"]
                eta = p.get("eta")
                st.progress(
                    min(done, 1.0),
                    text=f"Epoch {p['epoch']} of {p['epochs']}, batch {p['batch']} of "
                    f"{p['batches']} · loss {p['loss']:.3f}"
                    + (f" · about {eta:.0f} s to go" if eta is not None else ""),
                )
            elif run.status == "running":
                st.info("Starting…")
            if run.active and st.button("Stop", icon=":material/stop:", key=f"stop_{run_id}"):
                store.request_stop(run_id)
                st.toast("Stopping after this batch; the best epoch so far is kept.")
            if epochs:
                st.plotly_chart(
                    curves.training_curves(epochs, store.batch_losses(run_id)),
                    key=f"curves_{run_id}",
                )
            if run.status in ("finished", "stopped") and run.test_accuracy is not None:
                st.success(
                    f"{run.message} Test accuracy **{run.test_accuracy:.2%}** on 10,000 digits "
                    f"it never saw (best epoch {run.best_epoch}, {run.train_seconds:.0f} s)."
                )
                model = {"model": f"run-{run_id}"}
                c1, c2, c3 = st.columns(3)
                c1.page_link("views/evaluate.py", label="Evaluate it", icon=":material/fact_check:",
                             query_params=model)  # fmt: skip
                c2.page_link("views/weights.py", label="See its weights", icon=":material/grid_on:",
                             query_params=model)  # fmt: skip
                c3.page_link("views/draw.py", label="Draw for it", icon=":material/draw:",
                             query_params=model)  # fmt: skip
            elif run.status == "diverged":
                st.error(run.message)
            elif run.status == "failed":
                st.error(f"This run failed: {run.message}")
            elif run.status == "stopped":
                st.warning(run.message)
            with st.expander("Settings of this run"):
                st.json(settings.to_query(run.config) or {"preset": "default"})

        live(watched)
