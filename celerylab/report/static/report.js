(function () {
  var nodes = document.querySelectorAll("script.celerylab-figure");
  for (var i = 0; i < nodes.length; i++) {
    var s = nodes[i];
    var f = JSON.parse(s.textContent);
    Plotly.newPlot(document.getElementById(s.getAttribute("data-target")), f.data, f.layout,
                   {responsive: true, displaylogo: false});
  }
})();
