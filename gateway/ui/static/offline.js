// Registers the service worker that keeps the information pack (/ui/info) on the device for offline reading.
// Without script or service workers the pages work as before, online.
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/ui/sw.js", { scope: "/ui/info" }).catch(() => {});
}
