// The overview page offers a reload when a new alert arrives (kept out of the page itself: the
// Content-Security-Policy allows no inline script).
document.addEventListener('axhub:alert', () => AX.toastReload());
