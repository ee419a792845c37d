// Widget modules that the ipywidgets HTML manager loads through RequireJS come from
// this site, never from a CDN: anywidget (plotly's FigureWidget is an anywidget).
(function () {
  var base = new URL(".", document.currentScript.src).href;
  window.requirejs.config({ paths: { anywidget: base + "anywidget" } });
})();
