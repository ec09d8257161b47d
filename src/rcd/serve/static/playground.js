// rcd playground: reads the server's step stream (POST /v1/rcd/denoise, server-sent events read with
// fetch + ReadableStream) and draws each denoising step of SeqD and/or RCD. Plain JS, no build, offline.
"use strict";

// A still-masked position is shaded by the alpha fed back where it differs between positions; where it
// does not (SeqD's 0, a fixed alpha) by the confidence, so the picture still says something. The demo's
// trace.png follows the same rule (rcd.eval.report.shaded_quantity).
const FLAT = 1e-6;
const SIDES = { seqd: { title: "SeqD" }, rcd: { title: "RCD" } };

const $ = (selector, root = document) => root.querySelector(selector);
const form = $("#controls");
const runButton = $("#run");
const statusLine = $("#server-status");
let info = null;
let running = null; // AbortController of the decode in flight

// ---- server-sent events over fetch ------------------------------------------------------------

async function* readEvents(response) {
  // Yields the parsed JSON of every `data:` event until `data: [DONE]` or the end of the body.
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let match;
    while ((match = /\r\n\r\n|\n\n|\r\r/.exec(buffer)) !== null) {
      const block = buffer.slice(0, match.index);
      buffer = buffer.slice(match.index + match[0].length);
      const data = block
        .split(/\r\n|\n|\r/)
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (!data) continue; // a comment or keep-alive
      if (data === "[DONE]") return;
      yield JSON.parse(data);
    }
  }
}

function headers(extra = {}) {
  // a server started with --api-key wants it on every /v1 route
  const key = $("#api-key").value;
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return body.error?.message ?? JSON.stringify(body);
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

// ---- controls ----------------------------------------------------------------------------------

function sideModel(side) {
  // RCD: the served --model (role "rcd"), asked for residual decoding where the server's defaults are plain;
  // SeqD: the --baseline, else a model the server decodes plainly.
  const models = info?.models ?? [];
  if (side === "rcd") return models.find((m) => m.role === "rcd") ?? models.find((m) => m.residual) ?? null;
  return models.find((m) => m.role === "baseline") ?? models.find((m) => !m.residual) ?? null;
}

function blockLength() {
  return Number(info?.defaults?.block_length ?? 32);
}

function genLength() {
  // max_tokens rounded up to whole blocks, as the server does
  const block = blockLength();
  return Math.max(1, Math.ceil(Number($("#max-tokens").value) / block)) * block;
}

function fillControls() {
  const defaults = info.defaults ?? {};
  const block = blockLength();
  const gen = Number(defaults.max_tokens ?? defaults.gen_length ?? block);
  $("#block-length").textContent = block;
  $("#max-tokens").value = gen;
  const select = $("#tokens-per-step");
  select.replaceChildren();
  const perStep = defaults.steps ? gen / defaults.steps : 1;
  for (let k = 1; k <= block; k++) {
    if (block % k) continue; // a fixed schedule needs whole steps per block
    select.append(new Option(String(k), String(k), false, k === perStep));
  }
  if (defaults.threshold !== null && defaults.threshold !== undefined) {
    $("#threshold").value = defaults.threshold;
    form.rule.value = "threshold";
  }
  const missing = [];
  for (const side of Object.keys(SIDES)) {
    if (sideModel(side)) continue;
    missing.push(SIDES[side].title);
    form.side.forEach((input) => {
      if (input.value === side || input.value === "both") input.disabled = true;
    });
  }
  const enabled = [...form.side].filter((input) => !input.disabled);
  if (enabled.length && [...form.side].find((input) => input.checked)?.disabled) enabled[0].checked = true;
  $("#models-note").textContent = [
    ...Object.keys(SIDES).filter(sideModel).map((side) => `${SIDES[side].title}: ${sideModel(side).id}`),
    ...missing.map((name) => `${name}: not served (see rcd serve --help)`),
  ].join(" · ");
  runButton.disabled = enabled.length === 0;
  statusLine.textContent = enabled.length ? "ready" : "the server offers no model to decode";
}

function decodeOptions() {
  // The decoding part of the request's `rcd` extension: a fixed schedule or a confidence threshold.
  if (form.rule.value === "threshold") return { threshold: Number($("#threshold").value), steps: null };
  const perStep = Number($("#tokens-per-step").value);
  return { steps: genLength() / perStep, threshold: null };
}

// ---- one side: its canvas, live and replayed ---------------------------------------------------

function showToken(cell, token) {
  // the token's text, whitespace made visible; a special token (<eos>, [PAD]) by its name, small
  const text = document.createElement("span");
  text.className = "token";
  const special = /^(<\|?|\[)([^<>\[\]|]+)(\|?>|\])$/.exec(token);
  if (token === "") text.textContent = "∅";
  else if (special) text.textContent = special[2];
  else text.textContent = token.replace(/ /g, "␣").replace(/\n/g, "↵").replace(/\t/g, "⇥");
  if (special || text.textContent.length > 2) cell.classList.add("long");
  cell.append(text);
}

function shadeColour(quantity, value) {
  // light (0) to dark (1); hue: blue for confidence, orange for alpha (the legend's ramps)
  const [hue, saturation, light, dark] = quantity === "alpha" ? [25, 90, 93, 38] : [212, 70, 94, 32];
  return `hsl(${hue} ${saturation}% ${light - (light - dark) * value}%)`;
}

function fedAlpha(step) {
  // the alpha fed back at the positions still masked after this step
  return step.alpha.filter((a, i) => a !== null && step.canvas[i] === null);
}

class Panel {
  constructor(side, model) {
    this.side = side;
    this.model = model;
    this.steps = [];
    this.shade = "confidence";
    this.node = $("#panel-template").content.firstElementChild.cloneNode(true);
    this.node.dataset.side = side;
    this.node.dataset.state = "running";
    const title = $(".panel-title", this.node);
    title.textContent = SIDES[side].title;
    const id = document.createElement("span");
    id.className = "model-id";
    id.textContent = model.id;
    title.append(id);
    this.slider = $(".replay-slider", this.node);
    this.slider.setAttribute("aria-label", `${SIDES[side].title}: replay step`);
    this.slider.addEventListener("input", () => this.draw(Number(this.slider.value) - 1));
  }

  start(event) {
    this.genLength = event.gen_length;
    this.blockLength = event.block_length;
    const canvas = $(".canvas", this.node);
    canvas.replaceChildren();
    this.cells = [];
    for (let start = 0; start < this.genLength; start += this.blockLength) {
      // one row per block: blocks are decoded one after the other, top to bottom
      const row = document.createElement("div");
      row.className = "block";
      const label = document.createElement("span");
      label.className = "block-label";
      label.textContent = start / this.blockLength + 1;
      label.title = `block ${start / this.blockLength + 1}`;
      const cells = document.createElement("div");
      cells.className = "cells";
      for (let i = start; i < Math.min(start + this.blockLength, this.genLength); i++) {
        const cell = document.createElement("span");
        cell.className = "cell waiting";
        cells.append(cell);
        this.cells.push(cell);
      }
      row.append(label, cells);
      canvas.append(row);
    }
    canvas.setAttribute("aria-label", `${SIDES[this.side].title}: ${this.genLength} masked positions`);
  }

  addStep(event) {
    this.steps.push(event);
    const fed = fedAlpha(event);
    if (fed.length) this.lastAlpha = fed[0];
    if (this.side === "rcd" && fed.length > 1 && Math.max(...fed) - Math.min(...fed) > FLAT) this.shade = "alpha";
    const count = this.steps.length;
    this.slider.max = count;
    this.slider.value = count;
    this.draw(count - 1);
  }

  draw(index) {
    const step = this.steps[index];
    const fresh = new Set(step.committed);
    let committed = 0;
    step.canvas.forEach((token, i) => {
      const cell = this.cells[i];
      cell.replaceChildren();
      cell.style.background = "";
      const confidence = step.confidence[i];
      const alpha = step.alpha[i];
      if (token !== null) {
        committed += 1;
        cell.className = "cell committed" + (fresh.has(i) ? " fresh" : "");
        showToken(cell, token);
        const order = document.createElement("sub");
        order.className = "order";
        order.textContent = step.order[i] + 1;
        cell.append(order);
        cell.title = `position ${i}: ${JSON.stringify(token)}, committed at step ${step.order[i] + 1}`;
      } else if (confidence !== null) {
        const value = this.shade === "alpha" ? alpha : confidence;
        cell.className = "cell masked" + (value > 0.6 ? " dark" : "");
        cell.style.background = shadeColour(this.shade, value);
        const label = document.createElement("span");
        label.className = "value";
        label.textContent = value.toFixed(2).replace(/^0/, "");
        cell.append(label);
        cell.title = `position ${i}: masked, confidence ${confidence.toFixed(3)}`
          + (alpha === null ? "" : `, alpha fed back ${alpha.toFixed(3)}`);
      } else {
        cell.className = "cell waiting";
        cell.title = `position ${i}: masked, block not reached yet`;
      }
    });
    const total = this.steps.length;
    $(".stat-step", this.node).textContent = this.done ? `${index + 1} / ${total}` : String(index + 1);
    $(".stat-nfe", this.node).textContent = step.nfe;
    $(".stat-committed", this.node).textContent = `${committed} / ${this.genLength}`;
    $(".stat-shade", this.node).textContent = this.shadeLabel(step);
    $(".replay-value", this.node).textContent = index + 1;
    $(".replay-total", this.node).textContent = total;
    $(".canvas", this.node).setAttribute(
      "aria-label",
      `${SIDES[this.side].title}, step ${index + 1} of ${total}: ${committed} of ${this.genLength} positions committed`,
    );
  }

  shadeLabel(step) {
    if (this.shade === "alpha") return "the alpha fed back";
    const alpha = fedAlpha(step)[0] ?? this.lastAlpha; // none masked after the last step: the run's
    if (this.side !== "rcd" || alpha === undefined) return "confidence";
    return `confidence (alpha fed back: ${alpha.toFixed(2)} everywhere)`;
  }

  finish(event) {
    this.done = true;
    this.node.dataset.state = "done";
    const usage = event.usage ?? {};
    if (usage.nfe !== undefined) {
      const reference = usage.reference_nfe ? ` (+${usage.reference_nfe} reference)` : "";
      this.finalNfe = `${usage.nfe}${reference}`;
    }
    this.slider.disabled = this.steps.length === 0;
    if (this.steps.length) this.draw(this.steps.length - 1);
    if (this.finalNfe) $(".stat-nfe", this.node).textContent = this.finalNfe;
    if (usage.tokens_per_step !== undefined) {
      $(".stat-parallelism", this.node).textContent = usage.tokens_per_step.toFixed(2);
    }
    $(".output", this.node).textContent = `→ ${JSON.stringify(event.text)}`;
  }

  fail(message) {
    this.node.dataset.state = "error";
    if (!this.steps.length) this.node.classList.add("empty"); // nothing decoded: the message alone
    const error = $(".error", this.node);
    error.textContent = message;
    error.hidden = false;
  }

  async run(body, signal) {
    try {
      const response = await fetch("/v1/rcd/denoise", {
        method: "POST",
        headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
        body: JSON.stringify(body),
        signal,
      });
      if (!response.ok) return this.fail(await errorMessage(response));
      for await (const event of readEvents(response)) {
        if (event.type === "start") this.start(event);
        else if (event.type === "step") this.addStep(event);
        else if (event.type === "done") this.finish(event);
        else if (event.type === "error") return this.fail(event.error?.message ?? "the decode failed");
      }
      if (!this.done) this.fail("the stream ended before the decode finished");
    } catch (err) {
      if (err.name !== "AbortError") this.fail(`cannot reach the server: ${err.message}`);
    }
  }
}

// ---- wiring -------------------------------------------------------------------------------------

async function run(event) {
  event.preventDefault();
  if (!form.reportValidity()) return;
  running?.abort();
  const controller = new AbortController();
  running = controller;
  const choice = form.side.value;
  const sides = choice === "both" ? ["seqd", "rcd"] : [choice];
  const panels = sides.map((side) => new Panel(side, sideModel(side)));
  $("#panels").replaceChildren(...panels.map((panel) => panel.node));
  statusLine.textContent = "decoding…";
  const decoding = decodeOptions();
  const prompt = $("#prompt").value;
  const maxTokens = Number($("#max-tokens").value);
  await Promise.all(panels.map((panel) => {
    const residual = panel.side === "rcd" && !panel.model.residual ? { rcd: true } : {};
    const body = { model: panel.model.id, prompt, max_tokens: maxTokens, rcd: { ...decoding, ...residual } };
    return panel.run(body, controller.signal);
  }));
  if (running === controller) {
    const failed = panels.some((panel) => panel.node.dataset.state === "error");
    statusLine.textContent = failed ? "finished with an error (see the panel)" : "done: drag a slider to replay";
  }
}

async function loadInfo() {
  try {
    const response = await fetch("/v1/rcd/info", { headers: headers() });
    if (response.status === 401) {
      $("#key-field").hidden = false;
      statusLine.textContent = "this server needs its API key: type it below";
      return;
    }
    if (!response.ok) throw new Error(await errorMessage(response));
    info = await response.json();
    fillControls();
  } catch (err) {
    statusLine.textContent = `cannot read the server's models: ${err.message}`;
  }
}

form.addEventListener("submit", run);
$("#api-key").addEventListener("change", loadInfo);
loadInfo();
