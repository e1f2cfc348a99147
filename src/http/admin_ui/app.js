// The admin page: every call goes to the admin API with the key or JWT the
// operator typed in (kept in this page's memory only), as
// `Authorization: Bearer`. Data is put in the page as text, never as HTML.

let key = null;
const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, body) {
    super(`${status} ${body?.code ?? ""}: ${body?.message ?? "no answer"}`);
    this.status = status;
  }
}

async function api(method, path, body) {
  const init = { method, headers: { Authorization: `Bearer ${key}` } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const answer = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, answer);
  return answer;
}

const enc = encodeURIComponent;

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  return td;
}

function button(label, onClick) {
  const td = document.createElement("td");
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", onClick);
  td.append(b);
  return td;
}

function fill(tableId, rows, toCells) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren(
    ...rows.map((row) => {
      const tr = document.createElement("tr");
      tr.append(...toCells(row));
      return tr;
    }),
  );
}

function show(answer) {
  $("result").textContent = typeof answer === "string" ? answer : JSON.stringify(answer, null, 2);
}

async function act(what) {
  try {
    show(await what());
    await refresh();
  } catch (e) {
    show(`error: ${e.message}`);
  }
}

async function kick(userId, reason, revoke) {
  const body = { userId };
  if (reason) body.reason = reason;
  if (revoke) body.revoke = true;
  return api("POST", "/admin/kick", body);
}

async function presence(room) {
  const page = await api("GET", `/admin/rooms/${enc(room)}/presence`);
  $("presence-title").textContent = `Presence in ${room} (${page.memberCount})`;
  fill("presence", page.members, (m) => [
    cell(m.userId),
    cell(m.name),
    cell(m.customStatus?.text ? `${m.status} – ${m.customStatus.text}` : m.status),
    cell(String(m.connections)),
  ]);
}

async function refresh() {
  const [stats, conns, rooms, audit] = await Promise.all([
    api("GET", "/admin/stats"),
    api("GET", "/admin/connections"),
    api("GET", "/admin/rooms"),
    api("GET", "/admin/audit?limit=50"),
  ]);
  $("summary").textContent =
    `${stats.connections} connections, ${stats.users} users, ${stats.rooms} rooms on ` +
    `${stats.nodes.length} node(s)` +
    (stats.nodesNotAnswering ? `, ${stats.nodesNotAnswering} not answering` : "");
  fill("connections", conns.connections, (c) => [
    cell(c.userId),
    cell((c.rooms ?? []).join(", ")),
    cell(c.nodeId),
    cell(c.remoteAddr),
    cell(c.connectedAt),
    button("Kick", () => act(() => kick(c.userId, "", false))),
  ]);
  fill("rooms", rooms.rooms, (r) => [
    cell(r.room),
    cell(String(r.users)),
    cell(String(r.connections)),
    button("Presence", () => presence(r.room).catch((e) => show(`error: ${e.message}`))),
  ]);
  fill("audit", audit.events, (e) => [
    cell(String(e.id)),
    cell(e.createdAt),
    cell(e.kind),
    cell(e.userId),
    cell(JSON.stringify(e.detail)),
  ]);
}

function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

function onSubmit(id, handler) {
  $(id).addEventListener("submit", (event) => {
    event.preventDefault();
    const op = event.submitter?.value;
    act(() => handler(formValues(event.target), op, event.target));
  });
}

onSubmit("kick", (v, _, form) => kick(v.userId, v.reason, form.elements.revoke.checked));
onSubmit("notify", (v) =>
  api("POST", "/admin/notify", { userId: v.userId, title: v.title, body: v.body, kind: v.kind }),
);
onSubmit("broadcast", (v) => {
  const body = { event: v.event };
  if (v.room) body.room = v.room;
  if (v.data) body.data = JSON.parse(v.data);
  return api("POST", "/admin/broadcast", body);
});
onSubmit("room-create", (v) => {
  const body = { room: v.room, type: v.type, visibility: v.visibility };
  if (v.title) body.title = v.title;
  return api("POST", "/admin/rooms", body);
});

async function members(room) {
  const list = await api("GET", `/admin/rooms/${enc(room)}/members?limit=200`);
  fill("members", list.members, (m) => [
    cell(m.userId),
    cell(m.role),
    cell(m.muted ? "yes" : "no"),
    cell(m.joinedAt),
  ]);
  return list;
}

onSubmit("room-show", async (v, op) => {
  if (op === "delete") return api("DELETE", `/admin/rooms/${enc(v.room)}`);
  const room = await api("GET", `/admin/rooms/${enc(v.room)}`);
  await members(v.room);
  return room;
});
onSubmit("member", async (v, op) => {
  const path = `/admin/rooms/${enc(v.room)}/members/${enc(v.userId)}`;
  const answer =
    op === "remove" ? await api("DELETE", path) : await api("PUT", path, { role: v.role });
  await members(v.room);
  return answer;
});

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  key = $("key").value.trim();
  $("error").textContent = "";
  try {
    await refresh();
  } catch (e) {
    key = null;
    $("error").textContent = e.status === 401 || e.status === 403 ? `refused: ${e.message}` : e.message;
    return;
  }
  $("key").value = "";
  $("login").classList.add("hidden");
  $("app").classList.remove("hidden");
});

$("refresh").addEventListener("click", () => refresh().catch((e) => show(`error: ${e.message}`)));
$("logout").addEventListener("click", () => {
  key = null;
  $("app").classList.add("hidden");
  $("login").classList.remove("hidden");
});

// Live: the lists follow the server every few seconds while signed in.
setInterval(() => {
  if (key) refresh().catch((e) => show(`error: ${e.message}`));
}, 3000);
