"""``report.html``: one self-contained page (no network: styles inline, every image a data URI) to look at a run.

The tables are ``report.md`` (rendered from ``metrics.json`` by :mod:`umsrep.evaluate.report`, so both reports
always say the same) converted with Python-Markdown; the figures are drawn with matplotlib from the files
evaluation wrote (``predictions/<approach>/test.npz``, :mod:`umsrep.evaluate.predictions`) — neither the model
nor TensorFlow is loaded:

recipe (collapsible YAML) · data counts and skipped files · learning curves per stage · metrics tables with
95% CIs · confusion matrices · ROC curves · test images with true vs predicted masks · Grad-CAM examples for
each class · denoising examples (noisy / denoised / clean with PSNR) · derived decisions · the strategy and
baseline comparison when present.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1180px;padding:0 24px 48px;
color:#1d2430;line-height:1.45}
h1{border-bottom:3px solid #3a6ea5;padding-bottom:6px}
h2{margin-top:36px;border-bottom:1px solid #ccd;padding-bottom:4px}
table{border-collapse:collapse;margin:10px 0;font-size:13px}
th,td{border:1px solid #ccd;padding:3px 8px;text-align:right}
th{background:#eef2f8}td:first-child,th:first-child{text-align:left}code,pre{background:#f4f5f7;font-size:12px}
pre{padding:10px;overflow-x:auto}figure{margin:14px 0}figcaption{font-size:13px;color:#555}
img{max-width:100%}nav a{margin-right:12px;font-size:14px}.figs{display:flex;flex-wrap:wrap;gap:12px}
"""


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(uri, caption):
    text = html.escape(caption)
    return f'<figure><img src="{uri}" alt="{text}"><figcaption>{text}</figcaption></figure>'


def _gray(img):
    img = np.clip(np.asarray(img, np.float32), 0, 1)
    return img[..., 0] if img.shape[-1] == 1 else img


# ---------------------------------------------------------------------------------------------- figures
def learning_curves(stages: dict):
    import matplotlib.pyplot as plt

    stages = {k: v for k, v in stages.items() if v.get("history")}
    if not stages:
        return None
    n = len(stages)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, (name, st) in zip(axes.flat, stages.items()):
        hist = st["history"]
        ep = [h["epoch"] for h in hist]
        for key, style in (("loss", "-"), ("val_loss", "--")):
            if all(key in h for h in hist):
                ax.plot(ep, [h[key] for h in hist], style, label=key)
        for key in sorted({k for h in hist for k in h if k.startswith("loss/") or k.startswith("val_loss/")}):
            ax.plot(ep, [h.get(key, np.nan) for h in hist], ":", label=key)
        if st.get("best_epoch"):
            ax.axvline(st["best_epoch"], color="grey", lw=0.8)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return _png(fig)


def confusion(cm, classes, title):
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(1.1 + 0.7 * len(classes), 1.0 + 0.6 * len(classes)))
    ax.imshow(cm, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2 else "k")
    ax.set_xticks(range(len(classes)), classes, rotation=45, fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_ylabel("true", fontsize=8)
    ax.set_title(title, fontsize=9)
    return _png(fig)


def roc(y, probs, classes, title):
    import matplotlib.pyplot as plt
    from sklearn.metrics import auc, roc_curve

    fig, ax = plt.subplots(figsize=(3.6, 3.4))
    pairs = [(1, classes[1])] if len(classes) == 2 else list(enumerate(classes))
    for k, c in pairs:
        truth = (np.asarray(y) == k).astype(int)
        if truth.min() == truth.max():
            continue
        fpr, tpr, _ = roc_curve(truth, probs[:, k])
        ax.plot(fpr, tpr, label=f"{c} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("1 - specificity", fontsize=8)
    ax.set_ylabel("sensitivity", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def mask_grid(x, y, pred, title, n=6):
    """Rows: image with the true mask outlined (green) / with the predicted mask (red), per test image."""
    import matplotlib.pyplot as plt

    k = min(n, len(x))
    fig, axes = plt.subplots(2, k, figsize=(1.9 * k, 4.0), squeeze=False)
    for j in range(k):
        for r, (mask, colour, label) in enumerate(((y[j], "lime", "true"), (pred[j], "red", "predicted"))):
            ax = axes[r, j]
            ax.imshow(_gray(x[j]), cmap="gray")
            if np.any(mask > 0):
                ax.contour(mask > 0, levels=[0.5], colors=colour, linewidths=1.0)
                ax.imshow(np.ma.masked_where(mask == 0, mask), cmap="autumn" if r else "summer", alpha=0.3)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _png(fig)


def cam_grid(x, maps, captions, title):
    import matplotlib.pyplot as plt

    from umsrep.explain.gradcam import overlay

    k = len(x)
    fig, axes = plt.subplots(1, k, figsize=(2.1 * k, 2.5), squeeze=False)
    for j in range(k):
        axes[0, j].imshow(overlay(x[j], maps[j]))
        axes[0, j].set_title(captions[j], fontsize=7)
        axes[0, j].axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _png(fig)


def denoise_grid(clean, noisy_by_level, denoised_by_level, psnr, title):
    import matplotlib.pyplot as plt

    levels = list(noisy_by_level)
    k = len(clean)
    fig, axes = plt.subplots(k, 1 + 2 * len(levels), figsize=(1.9 * (1 + 2 * len(levels)), 2.0 * k),
                             squeeze=False)
    for i in range(k):
        cells = [("clean", clean[i])]
        for lv in levels:
            cells += [(f"{lv} {psnr[lv]['noisy'][i]:.1f} dB", noisy_by_level[lv][i]),
                      (f"denoised {psnr[lv]['denoised'][i]:.1f} dB", denoised_by_level[lv][i])]
        for j, (cap, img) in enumerate(cells):
            axes[i, j].imshow(_gray(img), cmap="gray", vmin=0, vmax=1)
            axes[i, j].set_title(cap, fontsize=6)
            axes[i, j].axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _png(fig)


def augment_grid(x, y, xa, ya, title):
    """Rows: training images; columns: the image, then augmented versions (mask outlined in green)."""
    import matplotlib.pyplot as plt

    n, draws = xa.shape[:2]
    fig, axes = plt.subplots(n, 1 + draws, figsize=(1.8 * (1 + draws), 1.9 * n), squeeze=False)
    for i in range(n):
        cells = [("original", x[i], None if y is None else y[i])]
        cells += [(f"augmented {j + 1}", xa[i, j], None if ya is None else ya[i, j]) for j in range(draws)]
        for j, (cap, img, mask) in enumerate(cells):
            ax = axes[i, j]
            ax.imshow(_gray(img), cmap="gray", vmin=0, vmax=1)
            if mask is not None and np.any(mask > 0):
                ax.contour(mask > 0, levels=[0.5], colors="lime", linewidths=0.8)
            ax.set_title(cap if i == 0 else "", fontsize=7)
            ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _png(fig)


# ----------------------------------------------------------------------------------------------- page
#: augmented training samples written by fit, read by the report (no TensorFlow needed to draw them)
PREVIEW_FILE = "predictions/augment_preview.npz"


def write_html_report(run, metrics, predictions=None, log=print):
    """Render ``report.html`` next to ``report.md`` in the run directory ``run``; the figures come from the
    prediction folder ``predictions`` (``predictions/<approach>/``; its ``test.npz``), the model is not needed."""
    from pathlib import Path

    from umsrep.evaluate.predictions import read_split
    from umsrep.evaluate.report import render_markdown
    from umsrep.rundir import RunDir
    from umsrep.transforms.compose import read_previews

    preds = None
    previews = read_previews(run.path / PREVIEW_FILE)
    test = Path(predictions) / "test.npz" if predictions is not None else None
    if test is not None and test.is_file():
        preds = read_split(test)
    else:
        log(f"report: no {test or 'predictions'}; report.html without the figures drawn from predictions "
            f"(`umsrep evaluate` writes them)")
    page = build_html(metrics, (run / RunDir.RECIPE).read_text(), render_markdown(metrics), preds, previews)
    run.write_text(RunDir.HTML, page)
    log(f"report: {run / RunDir.HTML} ({len(page) / 1e6:.1f} MB, self-contained)")


def build_html(metrics: dict, recipe_yaml: str, markdown_text: str, preds=None, previews=None) -> str:
    """The page. ``preds``: the test split's prediction arrays (:mod:`umsrep.evaluate.predictions`); without
    them only the parts that need no images (tables, learning curves) are drawn. ``previews``: augmented training
    samples (:func:`umsrep.transforms.compose.read_previews`)."""
    import matplotlib

    matplotlib.use("Agg")
    import markdown as md

    run = metrics.get("run", {})
    title = f"umsrep run {run.get('name', '?')}"
    sections = []
    curves = learning_curves(metrics.get("stages", {}))
    if curves:
        sections.append(("Learning curves", _figure(curves, "training (solid) and validation (dashed) loss per "
                                                            "epoch; grey line: best epoch")))
    if preds is not None:
        sections += _prediction_sections(metrics, preds)
    agree = _agreement_section(metrics.get("measurements", {}))
    if agree:
        sections.append(("Measurement agreement", agree))
    aug = _augment_section(previews)
    if aug:
        sections.append(("Augmented training samples", aug))
    body = md.markdown(markdown_text, extensions=["tables", "fenced_code"])
    nav = " ".join(f'<a href="#{_anchor(t)}">{html.escape(t)}</a>' for t, _ in sections)
    figs = "\n".join(f'<h2 id="{_anchor(t)}">{html.escape(t)}</h2>\n{content}' for t, content in sections)
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>\n<nav>Figures: {nav}</nav>\n{body}\n"
            f"<h2 id=\"recipe\">Recipe</h2><details><summary>recipe.yaml (resolved)</summary>"
            f"<pre>{html.escape(recipe_yaml)}</pre></details>\n{figs}\n</body></html>\n")


def _anchor(title):
    return "".join(c if c.isalnum() else "-" for c in title.lower())


def _prediction_sections(metrics, p):
    out = []
    cls_figs, seg_figs, cam_figs = [], [], []
    for name, t in metrics.get("tasks", {}).items():
        if "test" not in t or f"{name}.has_truth" not in p:
            continue
        has = np.asarray(p[f"{name}.has_truth"], bool)
        if t["type"] == "classification":
            cm = t["test"]["confusion_matrix"]
            cls_figs.append(_figure(confusion(cm, t["classes"], f"{name}: test confusion matrix"),
                                    f"{name}: rows true, columns predicted"))
            cls_figs.append(_figure(roc(p[f"{name}.truth"][has], p[f"{name}.probs"][has], t["classes"],
                                        f"{name}: test ROC"), f"{name}: one-vs-rest ROC"))
            cam_figs += _cam_examples(name, t["classes"], p)
        elif t["type"] == "segmentation" and f"{name}.ex_images" in p:
            seg_figs.append(_figure(mask_grid(p[f"{name}.ex_images"] / 255.0, p[f"{name}.ex_truth"],
                                              p[f"{name}.ex_labels"], f"{name}: test images"),
                                    f"{name}: true mask (top, green) and prediction (bottom, red)"))
    if cls_figs:
        out.append(("Confusion matrices and ROC curves", '<div class="figs">' + "".join(cls_figs) + "</div>"))
    if seg_figs:
        out.append(("Test segmentations", "".join(seg_figs)))
    if cam_figs:
        out.append(("Grad-CAM examples", "".join(cam_figs)))
    den = _denoise_examples(p)
    if den:
        out.append(("Denoising examples", den))
    return out


def _agreement_section(measurements: dict):
    """Bland-Altman plots of each measurement on the test split, from the predicted vs the true masks
    (metrics.json ``measurements``; no images or model needed), or None without measurements."""
    from umsrep.evaluate.agreement import bland_altman_figure

    figs = []
    for name, m in measurements.items():
        for block in m.get("by_data", []):
            res = block.get("test")
            if not res or "per_image" not in res:
                continue
            unit = "deg" if "deg" in res else "px"
            on = "/".join(block.get("tasks", []))
            truth = "; ".join(f"{t}: {v}" for t, v in block.get("truth", {}).items())
            figs.append(_figure(_png(bland_altman_figure(res["per_image"]["pred"], res["per_image"]["true"],
                                                         f"{name} on {on} test images", unit)),
                                f"{name}: measured on the predicted minus on the true masks ({truth})"))
    return '<div class="figs">' + "".join(figs) + "</div>" if figs else None


def _augment_section(previews):
    """The "Augmented training samples" figures from the arrays fit wrote (:func:`umsrep.transforms.compose.
    write_previews`), or None."""
    if not previews:
        return None
    figs = [_figure(augment_grid(*s[1:], s[0]), f"training augmentation ({s[0]}); validation and test images are "
                    "never augmented") for s in previews]
    return "".join(figs)


def _cam_examples(name, classes, p):
    if f"{name}.cam_error" in p:
        return [f"<p>Grad-CAM not available for {html.escape(name)}: {html.escape(p[f'{name}.cam_error'])}</p>"]
    if f"{name}.ex_cam" not in p:
        return []
    x, maps = p[f"{name}.ex_images"] / 255.0, p[f"{name}.ex_cam"].astype(np.float32)
    cls, probs, layer = p[f"{name}.ex_class"], p[f"{name}.ex_probs"], p[f"{name}.cam_layer"]
    figs = []
    for k, c in enumerate(classes):
        sel = np.flatnonzero(cls == k)
        if len(sel) == 0:
            continue
        caps = [f"p({c})={probs[i, k]:.2f}, pred {classes[int(np.argmax(probs[i]))]}" for i in sel]
        figs.append(_figure(cam_grid(x[sel], maps[sel], caps, f"{name}: true class {c}"),
                            f"{name}, class {c}: Grad-CAM at {layer} for the true class"))
    return figs


def _denoise_examples(p):
    if "denoise.ex_clean" not in p:
        return None
    clean = p["denoise.ex_clean"].astype(np.float32)
    k = len(clean)
    noisy, den, scores = {}, {}, {}
    for j in range(len(p["denoise.ex_noisy"])):
        lv = str(p["denoise.levels"][j])
        noisy[lv], den[lv] = p["denoise.ex_noisy"][j].astype(np.float32), p["denoise.ex_denoised"][j].astype(np.float32)
        scores[lv] = {"noisy": p["denoise.psnr"][j, 0, :k], "denoised": p["denoise.psnr"][j, 1, :k]}
    return _figure(denoise_grid(clean, noisy, den, scores, "denoising (test images)"),
                   "clean image; per noise level the noisy input and the representation's denoised output, with "
                   "PSNR against the clean image")
