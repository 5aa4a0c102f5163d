"""``fb.slowest``: the slowest flows, what made each slow, and whether it is an outlier.

A flow's latency is split into time to first byte/token (``ttft_ms``: waiting in the provider's
queue and reading the prompt) and generation (the rest). Each part is compared with the same
model's median, so "slow" means slow *for that model*:

* ``big prompt``: the first byte took most of the time and the prompt is at least twice the
  model's median prompt;
* ``long TTFT``: the first byte took most of the time without a big prompt (queueing, a cold
  model, rate limiting upstream);
* ``long generation``: most of the time went into producing the answer (``detail`` says how many
  output tokens and at what rate, and whether the rate itself was slow for the model).

``outlier`` flags latencies above the model's Tukey fence (Q3 + 1.5·IQR, at least 4 flows of
that model); ``vs_model_p50`` is the latency over the model's median.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SLOWEST_COLUMNS = [
    "id",
    "timestamp",
    "model",
    "latency_ms",
    "ttft_ms",
    "generation_ms",
    "input_tokens",
    "output_tokens",
    "output_tokens_per_s",
    "cause",
    "detail",
    "outlier",
    "vs_model_p50",
]
MIN_FOR_OUTLIER = 4


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    return pd.Series(df[col].to_numpy(dtype="float64", na_value=np.nan), index=df.index)


def explain_latency(df: pd.DataFrame) -> pd.DataFrame:
    """Every flow of ``df`` with ``generation_ms``, ``cause``, ``detail``, ``outlier`` and
    ``vs_model_p50`` (flows without a latency get NA)."""
    latency = _num(df, "latency_ms")
    ttft = _num(df, "ttft_ms").clip(upper=latency)
    gen = (latency - ttft).where(ttft.notna(), np.nan)
    inp = _num(df, "input_tokens")
    out_tok = _num(df, "output_tokens")
    tps = _num(df, "output_tokens_per_s")
    model = df["model"].astype(object).fillna("?")
    g = pd.DataFrame(
        {"m": model, "lat": latency, "ttft": ttft, "gen": gen, "inp": inp, "tps": tps}
    ).groupby("m")
    med = {c: g[c].transform("median") for c in ("lat", "ttft", "gen", "inp", "tps")}
    q1, q3 = (
        g["lat"].transform(lambda s: s.quantile(0.25)),
        g["lat"].transform(lambda s: s.quantile(0.75)),
    )
    n = g["lat"].transform("count")
    fence = q3 + 1.5 * (q3 - q1)
    outlier = (n >= MIN_FOR_OUTLIER) & (latency > fence) & (latency > med["lat"])

    causes: list[str | None] = []
    details: list[str | None] = []
    for i in range(len(df)):
        lat, first, gen_i = latency.iat[i], ttft.iat[i], gen.iat[i]
        if np.isnan(lat):
            causes.append(None)
            details.append(None)
            continue
        prompt_x = inp.iat[i] / med["inp"].iat[i] if med["inp"].iat[i] else np.nan
        first_share = first / lat if lat > 0 and not np.isnan(first) else np.nan
        if not np.isnan(first_share) and first_share >= 0.5:
            if prompt_x >= 2:
                causes.append("big prompt")
                details.append(
                    f"first byte after {first / 1000:.2f} s of {lat / 1000:.2f} s; prompt "
                    f"{int(inp.iat[i]):,} tokens, {prompt_x:.1f}× the model's median"
                )
            else:
                causes.append("long TTFT")
                details.append(
                    f"first byte after {first / 1000:.2f} s of {lat / 1000:.2f} s "
                    f"(model median {med['ttft'].iat[i] / 1000:.2f} s); prompt not unusual"
                )
        elif not np.isnan(gen_i):
            rate = tps.iat[i]
            slow_rate = bool(med["tps"].iat[i] and rate < 0.5 * med["tps"].iat[i])
            toks = "?" if np.isnan(out_tok.iat[i]) else f"{int(out_tok.iat[i]):,}"
            causes.append("long generation")
            details.append(
                f"{gen_i / 1000:.2f} s generating {toks} output tokens"
                + (f" at {rate:.1f} tok/s" if not np.isnan(rate) else "")
                + (" (slow for the model)" if slow_rate else "")
            )
        else:
            causes.append("unknown")
            details.append("no first-byte time recorded")
    out = df.copy()
    out["generation_ms"] = gen
    out["cause"] = pd.array(causes, dtype="string[pyarrow]")
    out["detail"] = pd.array(details, dtype="string[pyarrow]")
    out["outlier"] = outlier.fillna(False).astype(bool)
    out["vs_model_p50"] = latency / med["lat"].replace(0, np.nan)
    return out


def slowest(df: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The ``n`` slowest flows of ``df`` (by ``latency_ms``) with the cause of each."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n!r}")
    explained = explain_latency(df)
    explained = explained[explained["latency_ms"].notna()]
    top = explained.sort_values("latency_ms", ascending=False, kind="stable").head(n)
    return top.reset_index(drop=True)[SLOWEST_COLUMNS]
