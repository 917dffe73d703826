// The printable 受理交办单's 打印 button (a script file: the desk's CSP runs no inline
// script or onclick attribute).
document.getElementById('print').addEventListener('click', () => window.print());
