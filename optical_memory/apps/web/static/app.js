// optical-memory viewer. Data only ever reaches the page through textContent / attributes:
// never innerHTML, so message text cannot become markup.
"use strict";

const $ = (id) => document.getElementById(id);
let thread = "default";

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

async function api(path, options) {
  const response = await fetch(path, options);
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response.json();
}

function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

function q(params) {
  return new URLSearchParams(params).toString();
}

function threadFromHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  return params.get("thread");
}

async function loadThreads() {
  const data = await api("/api/threads");
  $("model-name").textContent = `model: ${data.model}`;
  if (thread === null) thread = data.latest || "default";  // no thread named: the newest one
  const names = data.threads.includes(thread) ? data.threads : [...data.threads, thread];
  const list = $("threads");
  list.replaceChildren();
  for (const name of names) {
    const item = el("li");
    const link = el("a", name);
    link.href = "#" + q({ thread: name });
    if (name === thread) link.setAttribute("aria-current", "page");
    item.append(link);
    list.append(item);
  }
}

function renderAccounting(memory) {
  const textPages = memory.pages.filter((page) => page.mode === "text").length;
  const images = memory.pages.length - textPages;
  const rows = [
    ["in context", `${memory.total_tokens} tokens`],
    ["vision", `${memory.vision_tokens} tokens in ${plural(images, "page image")}`],
    ["text", `${memory.text_tokens} tokens in ${memory.recent_turns} recent turns` +
      (textPages ? ` and ${plural(textPages, "page")} sent as text` : "")],
    ["pages stand for", `${memory.replaced_text_tokens} text tokens` +
      (memory.compression ? ` (${memory.compression.toFixed(1)}×)` : "")],
    ["tiers", Object.entries(memory.tiers).map(([m, n]) => `${n} ${m}`).join(", ") || "none"],
    ["forgotten turns", memory.forgotten_turns],
  ];
  const list = $("accounting");
  list.replaceChildren();
  for (const [term, value] of rows) list.append(el("dt", term), el("dd", value));
}

function renderPages(memory) {
  const container = $("pages");
  container.replaceChildren();
  $("no-pages").hidden = memory.pages.length > 0;
  for (const page of memory.pages) {  // newest (sharpest) first, oldest last
    const figure = el("figure", undefined, `page-thumb tier-${page.mode}`);
    figure.dataset.pageId = page.page_id;
    figure.dataset.mode = page.mode;
    figure.tabIndex = 0;
    const first = page.first_turn, last = page.last_turn;  // numbers in the thread
    const caption = el("figcaption");
    if (page.mode === "text") {
      // The profitability gate sends this page as text: its image would cost more tokens.
      figure.append(el("div",
        `sent as its ${page.text_tokens} text tokens: its ${page.age_mode} image would cost ` +
        `${page.vision_tokens}`, "text-page"));
      caption.append(
        el("span", page.mode, "tier-label"),
        el("span", ` page ${page.page_id} · turns ${first}–${last} · ${page.text_tokens} text tok`),
      );
    } else {
      const image = el("img");
      image.src = pageImageUrl(page);
      image.alt = `page ${page.page_id} at ${page.mode}`;
      figure.append(image);
      caption.append(
        el("span", page.mode, "tier-label"),
        el("span", ` page ${page.page_id} · turns ${first}–${last} · ${page.vision_tokens} tok`),
      );
    }
    figure.append(caption);
    figure.addEventListener("click", () => showPage(page));
    figure.addEventListener("keydown", (event) => { if (event.key === "Enter") showPage(page); });
    container.append(figure);
  }
}

function renderRecent(memory) {
  const list = $("recent");
  list.replaceChildren();
  for (const turn of memory.recent) {
    const item = el("li", undefined, `turn role-${turn.role === "user" ? "user" : "other"}`);
    item.append(el("span", turn.role, "role"), el("span", turn.content, "content"));
    list.append(item);
  }
}

function renderMemory(memory) {
  $("thread-name").textContent = memory.thread_id;
  renderAccounting(memory);
  renderPages(memory);
  renderRecent(memory);
}

function pageImageUrl(page) {
  return "/api/page.png?" + q({ thread, page_id: page.page_id, mode: page.mode });
}

async function showPage(page) {
  const data = await api("/api/page-text?" + q({ thread, page_id: page.page_id }));
  $("page-detail").hidden = false;
  $("page-detail-title").textContent = "Page";
  $("page-detail-id").textContent = page.page_id;
  $("page-detail-mode").textContent = page.mode;
  const image = $("page-detail-image");
  image.hidden = page.mode === "text";
  if (page.mode === "text") image.removeAttribute("src");
  else image.src = pageImageUrl(page);
  image.alt = `page ${page.page_id} at ${page.mode}`;
  $("page-text").textContent = data.text;
}

// --- search: hits listed with their turn numbers, their pages highlighted -----------------

function snippetNodes(snippet) {
  // Matched words come between ** pairs: marked as DOM nodes, never parsed as HTML.
  return snippet.split("**").map((part, index) => index % 2 ? el("mark", part) : document.createTextNode(part));
}

function highlightPages(pageIds) {
  for (const figure of document.querySelectorAll(".page-thumb")) {
    figure.classList.toggle("hit", pageIds.has(Number(figure.dataset.pageId)));
  }
}

function showTurn(hit) {
  $("page-detail").hidden = false;
  $("page-detail-title").textContent = "Turn";
  $("page-detail-id").textContent = `#${hit.number}`;
  $("page-detail-mode").textContent = hit.page_id === null ? "recent" : `page ${hit.page_id}`;
  const image = $("page-detail-image");
  const figure = document.querySelector(`.page-thumb[data-page-id="${hit.page_id}"]`);
  image.hidden = !figure || figure.dataset.mode === "text";
  if (image.hidden) image.removeAttribute("src");
  else image.src = pageImageUrl({ page_id: hit.page_id, mode: figure.dataset.mode });
  image.alt = `the page that prints turn #${hit.number}`;
  $("page-text").textContent = `#${hit.number} ${hit.role}: ${hit.content}`;
}

async function search(event) {
  event.preventDefault();
  const query = $("search-query").value;
  const data = await api("/api/search?" + q({ thread, q: query }));
  const list = $("search-hits");
  list.replaceChildren();
  if (!data.hits.length) list.append(el("li", `nothing matches ${query}`, "muted"));
  for (const hit of data.hits) {
    const where = hit.page_id === null ? "recent" : `page ${hit.page_id}` + (hit.mode ? ` (${hit.mode})` : " (forgotten)");
    const item = el("li", undefined, "hit");
    item.tabIndex = 0;
    item.append(el("span", `#${hit.number} ${hit.role} · ${where}`, "role"), ...snippetNodes(hit.snippet));
    item.addEventListener("click", () => showTurn(hit));
    item.addEventListener("keydown", (e) => { if (e.key === "Enter") showTurn(hit); });
    list.append(item);
  }
  highlightPages(new Set(data.hits.map((hit) => hit.page_id).filter((id) => id !== null)));
}

async function refresh() {
  await loadThreads();
  renderMemory(await api("/api/memory?" + q({ thread })));
}

async function openThread() {
  thread = threadFromHash();
  $("page-detail").hidden = true;
  $("status").textContent = "";
  await refresh();
}

async function send(event) {
  event.preventDefault();
  const box = $("message");
  const content = box.value;
  if (!content.trim()) return;
  $("send").disabled = true;
  $("status").textContent = "waiting for the model…";
  try {
    const data = await api("/api/messages", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ thread, content }),
    });
    box.value = "";
    renderMemory(data.memory);
    $("status").textContent = "";
    await loadThreads();
  } catch (error) {
    $("status").textContent = `error: ${error.message}`;
  } finally {
    $("send").disabled = false;
  }
}

$("chat").addEventListener("submit", send);
$("search").addEventListener("submit", (event) => search(event).catch(report));
$("message").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("chat").requestSubmit(); }
});
$("new-thread").addEventListener("submit", (event) => {
  event.preventDefault();
  location.hash = q({ thread: $("new-thread-name").value.trim() || "default" });
  $("new-thread-name").value = "";
});
window.addEventListener("hashchange", () => openThread().catch(report));
// A terminal chat may write to the same file: show its turns when the viewer is looked at again.
window.addEventListener("focus", () => refresh().catch(report));
function report(error) { $("status").textContent = `error: ${error.message}`; }
openThread().catch(report);
