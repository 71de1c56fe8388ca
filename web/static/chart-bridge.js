// The dashboard's only JavaScript besides wasm-bindgen's glue: the bridge to uPlot. index.html
// loads both as classic deferred scripts next to the wasm module (no import chain to wait
// for): uPlot as the global `uPlot` (uPlot.iife.min.js, copied from node_modules by
// scripts/build-web.sh), this file as the global `MicrodashChart`. Rust drives it through
// src/uplot.rs; everything about the data (alignment, gaps, bands, units, colours) is decided
// there, in src/model/plot.rs and src/model/alerts.rs. This file only turns that into uPlot
// options and draws the tooltip and the alert overlay (transition markers, threshold lines).
'use strict';

// Cell encoding of model/plot.rs: NaN is a gap (null: the line breaks), +Infinity a time where
// the series has no point (undefined: the line passes over it). Metric values are finite.
const decode = (v) => (v === Infinity ? undefined : Number.isNaN(v) ? null : v);

const AXIS = '#94a3b8'; // slate-400: 7:1 on the chart background
const GRID = 'rgba(71, 85, 105, 0.45)';
const FONT = '11px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace';
const STAMP = () => uPlot.fmtDate('{YYYY}-{MM}-{DD} {HH}:{mm}:{ss}');

/** Whether `values` holds exactly one point (null is no point). */
function single(values) {
  let seen = 0;
  for (const v of values) {
    if (v != null && ++seen > 1) return false;
  }
  return seen === 1;
}

function withAlpha(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

class MicrodashChart {
  // target: the element uPlot fills (its width follows the element's); layout: JSON of
  // model::plot::Layout; formatValue(v) -> string; formatTicks(Float64Array) -> string[];
  // onZoom(startMs, endMs) after a drag across the plot.
  constructor(target, layoutJson, height, syncKey, formatValue, formatTicks, onZoom) {
    const layout = JSON.parse(layoutJson);
    this.layout = layout;
    // model::alerts::Overlay: markers [{ts_ms, color, text}], thresholds [{value, color, label}].
    this.overlay = { markers: [], thresholds: [] };
    this.window = null;
    this.target = target;
    this.height = height;
    this.yRange = null;
    this.draws = 0;
    this.formatValue = formatValue;
    const series = [{ label: 'time' }];
    for (const line of layout.lines) {
      series.push({
        label: line.label,
        stroke: line.band_edge ? 'transparent' : line.color,
        width: line.band_edge ? 0 : 1.75,
        dash: line.dash.length ? line.dash : undefined,
        // A series with a single point has no line to draw: its point is drawn as a dot, so the
        // chart beside the value is not empty.
        points: { show: line.band_edge ? false : (u, si) => single(u.data[si]), size: 7, width: 0, fill: line.color },
        spanGaps: false,
      });
    }
    const bands = layout.bands.map((b) => ({
      series: [b.upper, b.lower],
      fill: withAlpha(layout.lines[b.line - 1].color, 0.22),
    }));
    let ownDrag = false;
    const axis = { stroke: AXIS, font: FONT, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID, width: 1 } };
    const opts = {
      width: this.width(),
      height,
      series,
      bands,
      legend: { show: false },
      cursor: {
        points: { show: false },
        drag: { x: true, y: false, setScale: false },
        // Crosshairs follow each other across the page's charts; drags stay on their chart.
        sync: { key: syncKey, setSeries: false, filters: { pub: (type) => type !== 'mousedown' && type !== 'mouseup' } },
        // Double-click would reset uPlot's own zoom; the range is ours (in the URL).
        bind: { dblclick: () => null },
      },
      scales: {
        x: { time: true },
        // Thresholds stay on the chart: the value axis reaches them.
        y: {
          range: (u, min, max) => {
            const levels = this.overlay.thresholds.map((t) => t.value);
            if (this.yRange) return [Math.min(this.yRange[0], ...levels), Math.max(this.yRange[1], ...levels)];
            if (min == null && !levels.length) return uPlot.rangeNum(0, 1, 0.1, true);
            const lo = Math.min(min ?? Infinity, ...levels);
            const hi = Math.max(max ?? -Infinity, ...levels);
            return uPlot.rangeNum(lo, hi, 0.1, true);
          },
        },
      },
      axes: [
        { ...axis, space: 70 },
        {
          ...axis,
          // Four or five value ticks on a card-sized chart, not two.
          space: 24,
          // As wide as the longest label (monospace, ~6.7 px a character at 11 px).
          size: (u, values) => (values ? Math.ceil(Math.max(3, ...values.map((v) => v.length)) * 6.7 + 16) : 50),
          incrs: layout.increments ?? undefined,
          values: (u, splits) => formatTicks(Float64Array.from(splits)),
        },
      ],
      hooks: {
        init: [(u) => u.over.addEventListener('mousedown', () => (ownDrag = true))],
        setSelect: [
          (u) => {
            const { left, width } = u.select;
            if (ownDrag && width >= 3) {
              onZoom(u.posToVal(left, 'x') * 1000, u.posToVal(left + width, 'x') * 1000);
            }
            ownDrag = false;
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          },
        ],
        setCursor: [(u) => this.tooltip(u)],
        draw: [
          (u) => {
            this.drawOverlay(u);
            // Series drawn as a lone dot (for the browser tests, like the markers' count).
            target.dataset.dots = String(layout.lines.filter((l, i) => !l.band_edge && single(u.data[i + 1])).length);
            target.dataset.drawn = String(++this.draws);
          },
        ],
      },
    };
    this.u = new uPlot(opts, [[], ...layout.lines.map(() => [])], target);
    this.tip = document.createElement('div');
    this.tip.className = 'md-tooltip';
    this.tip.setAttribute('aria-hidden', 'true');
    this.tip.hidden = true;
    this.u.over.appendChild(this.tip);
    this.resizer = new ResizeObserver(() => this.u.setSize({ width: this.width(), height: this.height }));
    this.resizer.observe(target);
  }

  width() {
    return Math.max(this.target.clientWidth, 120);
  }

  // xs: seconds; ys: the columns one after the other, `columns` of them. Both are views into
  // wasm memory, valid only during this call: copied first.
  setData(xs, ys, columns, xMin, xMax, yMin, yMax) {
    const n = xs.length;
    const data = [Array.from(xs)];
    for (let c = 0; c < columns; c++) {
      data.push(Array.from(ys.subarray(c * n, (c + 1) * n), decode));
    }
    this.yRange = Number.isNaN(yMin) ? null : [yMin, yMax];
    this.window = [xMin / 1000, xMax / 1000];
    this.rescale(data);
  }

  rescale(data) {
    this.u.batch(() => {
      this.u.setData(data, true);
      if (this.window) this.u.setScale('x', { min: this.window[0], max: this.window[1] });
    });
  }

  // overlayJson: JSON of model::alerts::Overlay. The value axis is ranged again, since it
  // reaches the thresholds.
  setOverlay(overlayJson) {
    this.overlay = JSON.parse(overlayJson);
    this.rescale(this.u.data);
  }

  // After uPlot has drawn the series: dashed lines at the thresholds (labelled at the right),
  // a solid vertical line at each alert transition, both clipped to the plot area.
  drawOverlay(u) {
    const { markers, thresholds } = this.overlay;
    let drawn = 0;
    if (markers.length || thresholds.length) {
      const { ctx, bbox } = u;
      const px = window.devicePixelRatio || 1;
      ctx.save();
      ctx.beginPath();
      ctx.rect(bbox.left, bbox.top, bbox.width, bbox.height);
      ctx.clip();
      ctx.font = `${10 * px}px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace`;
      ctx.textAlign = 'right';
      for (const t of thresholds) {
        const y = Math.round(u.valToPos(t.value, 'y', true)) + 0.5;
        ctx.strokeStyle = t.color;
        ctx.lineWidth = 1.5 * px;
        ctx.setLineDash([6 * px, 4 * px]);
        ctx.beginPath();
        ctx.moveTo(bbox.left, y);
        ctx.lineTo(bbox.left + bbox.width, y);
        ctx.stroke();
        ctx.fillStyle = t.color;
        ctx.fillText(t.label, bbox.left + bbox.width - 4 * px, y - 4 * px);
      }
      ctx.setLineDash([]);
      for (const m of markers) {
        const x = Math.round(u.valToPos(m.ts_ms / 1000, 'x', true));
        if (x < bbox.left || x > bbox.left + bbox.width) continue;
        ctx.strokeStyle = m.color;
        ctx.lineWidth = 2 * px;
        ctx.beginPath();
        ctx.moveTo(x, bbox.top);
        ctx.lineTo(x, bbox.top + bbox.height);
        ctx.stroke();
        drawn++;
      }
      ctx.restore();
    }
    this.target.dataset.markersDrawn = String(drawn);
  }

  // Every line's value at the cursor's time (uPlot picks each series' nearest point, passing
  // over alignment artifacts and stopping at gaps).
  tooltip(u) {
    const { left, top, idx, idxs } = u.cursor;
    if (idx == null || left == null || left < 0) {
      this.tip.hidden = true;
      return;
    }
    const rows = [];
    this.layout.lines.forEach((line, i) => {
      if (line.band_edge) return;
      const at = idxs?.[i + 1] ?? idx;
      const v = at == null ? null : u.data[i + 1][at];
      rows.push([line.color, line.label, v == null ? '–' : this.formatValue(v)]);
    });
    // Alert transitions within a few pixels of the cursor.
    const notes = this.overlay.markers.filter((m) => Math.abs(u.valToPos(m.ts_ms / 1000, 'x') - left) <= 5);
    const box = this.tip;
    box.replaceChildren();
    const head = document.createElement('div');
    head.className = 'md-tooltip-time';
    head.textContent = STAMP()(new Date(u.data[0][idx] * 1000));
    box.appendChild(head);
    for (const [color, label, value] of rows) {
      const row = document.createElement('div');
      row.className = 'md-tooltip-row';
      const dot = document.createElement('span');
      dot.className = 'md-tooltip-dot';
      dot.style.background = color;
      const name = document.createElement('span');
      name.textContent = label;
      const val = document.createElement('span');
      val.className = 'md-tooltip-value';
      val.textContent = value;
      row.append(dot, name, val);
      box.appendChild(row);
    }
    for (const note of notes) {
      const row = document.createElement('div');
      row.className = 'md-tooltip-row md-tooltip-alert';
      const bar = document.createElement('span');
      bar.className = 'md-tooltip-bar';
      bar.style.background = note.color;
      const text = document.createElement('span');
      text.textContent = note.text;
      row.append(bar, text);
      box.appendChild(row);
    }
    box.hidden = false;
    const width = u.over.clientWidth;
    const x = left + 14 + box.offsetWidth > width ? left - 14 - box.offsetWidth : left + 14;
    const y = Math.min(Math.max(0, (top ?? 0) - 10), Math.max(0, u.over.clientHeight - box.offsetHeight));
    box.style.transform = `translate(${Math.max(0, x)}px, ${y}px)`;
  }

  destroy() {
    this.resizer.disconnect();
    this.u.destroy();
  }
}

window.MicrodashChart = MicrodashChart;
