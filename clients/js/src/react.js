// React hooks over a RealtimeClient (`import … from "@realtime-server/client/react"`).
// React is an optional peer dependency: only this entry imports it.

import { useCallback, useEffect, useState } from "react";

/**
 * The client's connection state, re-rendered on every change.
 * @param {import("./client.js").RealtimeClient} client
 * @returns {import("./client.js").ConnectionState}
 */
export function useRealtime(client) {
  const [state, setState] = useState(client.state);
  useEffect(() => {
    setState(client.state);
    return client.on("state", (s) => setState(s.state));
  }, [client]);
  return state;
}

/**
 * Joins `name` while mounted (leaves when unmounted) and keeps the messages
 * delivered since, with edits and deletions applied.
 * @param {import("./client.js").RealtimeClient} client
 * @param {string} name
 * @returns {{room: import("./room.js").Room | null, messages: import("./room.js").Message[], error: Error | null}}
 */
export function useRoom(client, name) {
  const [room, setRoom] = useState(/** @type {import("./room.js").Room | null} */ (null));
  const [messages, setMessages] = useState(/** @type {import("./room.js").Message[]} */ ([]));
  const [error, setError] = useState(/** @type {Error | null} */ (null));
  useEffect(() => {
    let cancelled = false;
    /** @type {(() => void)[]} */
    const offs = [];
    setMessages([]);
    setError(null);
    client.join(name).then(
      (r) => {
        if (cancelled) return;
        offs.push(
          r.on("message", (m) => setMessages((list) => [...list, m])),
          r.on("update", (u) =>
            setMessages((list) => list.map((m) => (m.messageId === u.messageId ? { ...m, content: u.content, metadata: u.metadata, editedAt: u.editedAt } : m))),
          ),
          r.on("delete", (d) =>
            setMessages((list) => list.map((m) => (m.messageId === d.messageId ? { ...m, content: "", metadata: null, deleted: true } : m))),
          ),
        );
        setRoom(r);
      },
      (err) => {
        if (!cancelled) setError(err);
      },
    );
    return () => {
      cancelled = true;
      for (const off of offs) off();
      client.room(name)?.leave();
      setRoom(null);
    };
  }, [client, name]);
  return { room, messages, error };
}

/**
 * The room's live member list.
 * @param {import("./room.js").Room | null} room
 * @returns {import("./room.js").Member[]}
 */
export function usePresence(room) {
  const [members, setMembers] = useState(room ? room.members : []);
  useEffect(() => {
    if (!room) {
      setMembers([]);
      return;
    }
    setMembers(room.members);
    return room.on("members", setMembers);
  }, [room]);
  return members;
}

/**
 * Who else is typing in the room, and the function to call on each keystroke.
 * @param {import("./room.js").Room | null} room
 * @returns {{users: string[], typing: () => void}}
 */
export function useTyping(room) {
  const [users, setUsers] = useState(room ? room.typingUsers : []);
  useEffect(() => {
    if (!room) {
      setUsers([]);
      return;
    }
    setUsers(room.typingUsers);
    return room.on("typing", (t) => {
      if (t.threadId === null) setUsers(t.users);
    });
  }, [room]);
  const typing = useCallback(() => room?.typing(), [room]);
  return { users, typing };
}

/**
 * Unread notifications received while mounted (unread ones come right after
 * each connect), newest last; `markRead` marks one read and drops it from
 * the list. Those read on another of the user's connections are dropped too.
 * @param {import("./client.js").RealtimeClient} client
 * @returns {{notifications: import("./client.js").Notification[], markRead: (id: string) => Promise<void>}}
 */
export function useNotifications(client) {
  const [notifications, setNotifications] = useState(/** @type {import("./client.js").Notification[]} */ ([]));
  useEffect(() => {
    const offs = [
      client.on("notification", (n) =>
        setNotifications((list) => (list.some((x) => x.notificationId === n.notificationId) ? list : [...list, n])),
      ),
      client.on("notification:read", (r) =>
        setNotifications((list) => (r.all ? [] : list.filter((n) => !(r.notificationIds ?? []).includes(n.notificationId)))),
      ),
    ];
    return () => offs.forEach((off) => off());
  }, [client]);
  const markRead = useCallback(
    async (/** @type {string} */ id) => {
      await client.markNotificationRead(id);
      setNotifications((list) => list.filter((n) => n.notificationId !== id));
    },
    [client],
  );
  return { notifications, markRead };
}

/**
 * Announcements received while mounted (active ones come right after each
 * connect), each once, oldest first; `dismiss` drops one from the list.
 * @param {import("./client.js").RealtimeClient} client
 * @returns {{announcements: import("./client.js").Announcement[], dismiss: (id: string) => void}}
 */
export function useAnnouncements(client) {
  const [announcements, setAnnouncements] = useState(/** @type {import("./client.js").Announcement[]} */ ([]));
  useEffect(
    () =>
      client.on("announcement", (a) =>
        setAnnouncements((list) => (list.some((x) => x.announcementId === a.announcementId) ? list : [...list, a])),
      ),
    [client],
  );
  const dismiss = useCallback(
    (/** @type {string} */ id) => setAnnouncements((list) => list.filter((a) => a.announcementId !== id)),
    [],
  );
  return { announcements, dismiss };
}
