// The information pack for offline use: every language's page is kept at install, and each page and style is
// refreshed whenever the network answers (network first, so a changed pack shows at once when online).
// Only these public pages and files are kept: nothing with anyone's data passes through this cache.
const CACHE = "info-pack-v1";
const LANGUAGES = ["de", "en", "ar", "fa", "ro", "ru", "tr", "uk"];
const PAGES = ["/ui/info", ...LANGUAGES.map((lang) => `/ui/info/${lang}`)];
const FILES = ["/ui/static/ui.css", "/ui/static/public.css", "/ui/static/offline.js", "/ui/static/icon.svg",
  "/ui/manifest.webmanifest"];
const KEPT = new Set([...PAGES, ...FILES]);

async function keep(cache, path) {
  const response = await fetch(path, { credentials: "omit" });
  if (response.ok) {
    await cache.put(path, response);
  }
}

self.addEventListener("install", (event) => {
  // One page that cannot be fetched now does not stop the others from being kept.
  event.waitUntil(caches.open(CACHE).then((cache) => Promise.allSettled([...KEPT].map((path) => keep(cache, path))))
    .then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((name) => name !== CACHE).map((name) => caches.delete(name))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin || !KEPT.has(url.pathname)) {
    return; // everything else goes to the network as if there were no worker
  }
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const response = await fetch(event.request);
      if (response.ok) {
        await cache.put(url.pathname, response.clone());
      }
      return response;
    } catch (offline) {
      return (await cache.match(url.pathname)) || Response.error();
    }
  })());
});
