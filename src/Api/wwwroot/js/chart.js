// A live line chart over optimizer steps (uPlot). Points are kept by step, so history from the API and
// live points from the hub merge without duplicates (a step logged again after a resume replaces the old
// one); redraws are batched to one per animation frame however fast points arrive.

import { h, number } from './format.js';

export class StepChart {
  /**
   * @param {string} name     data-chart name (tests and CSS find the chart by it)
   * @param {string} title
   * @param {{label: string, value: (record) => number|null, color: string, scale?: string}[]} series
   */
  constructor(name, title, series) {
    this.series = series;
    this.points = new Map();   // step → [value per series]
    this.pending = false;
    this.plot = null;
    this.plotHolder = h('div.chart-plot');
    this.empty = h('div.chart-empty', 'waiting for the first logged step…');
    this.el = h('section.card.chart', { dataset: { chart: name, points: '0' } }, h('h3', title), this.plotHolder, this.empty);
    this.resize = new ResizeObserver(() => this.plot?.setSize(this.size()));
    this.resize.observe(this.plotHolder);
  }

  /** Adds a trainer log record (MetricDto.record); ignores records without any of this chart's values. */
  add(step, record) {
    const values = this.series.map(s => { const v = s.value(record); return typeof v === 'number' && Number.isFinite(v) ? v : null; });
    if (values.every(v => v == null)) return;
    this.points.set(step, values);
    if (!this.pending) { this.pending = true; requestAnimationFrame(() => this.draw()); }
  }

  get count() { return this.points.size; }

  size() { return { width: Math.max(200, this.plotHolder.clientWidth), height: 220 }; }

  draw() {
    this.pending = false;
    const steps = [...this.points.keys()].sort((a, b) => a - b);
    // Only series that have values are drawn (no empty "eval loss" without val_size); when one gains its
    // first value the plot is built again with it.
    const shown = this.series.map((_, i) => steps.some(s => this.points.get(s)[i] != null));
    const data = [steps, ...this.series.flatMap((_, i) => shown[i] ? [steps.map(s => this.points.get(s)[i])] : [])];
    this.el.dataset.points = String(steps.length);
    this.empty.hidden = steps.length > 0;
    if (steps.length === 0) return;
    const key = shown.join();
    if (this.plot && this.shownKey !== key) { this.plot.destroy(); this.plot = null; }
    if (!this.plot) {
      this.shownKey = key;
      this.plot = new uPlot(this.options(this.series.filter((_, i) => shown[i])), data, this.plotHolder);
    } else {
      this.plot.setData(data);
    }
    const last = steps.at(-1);
    this.el.dataset.lastStep = String(last);
  }

  options(series) {
    const scales = [...new Set(series.map(s => s.scale ?? 'y'))];
    return {
      ...this.size(),
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
      scales: { x: { time: false } },
      series: [
        // The legend shows the hovered step's values, and the newest step's when the cursor is away.
        { label: 'step', value: (u, v, si, i) => (i == null ? u.data[0].at(-1) : v) ?? '–' },
        ...series.map(s => ({ label: s.label, stroke: s.color, width: 2, scale: s.scale ?? 'y', spanGaps: true,
          value: (u, v, si, i) => number(i == null ? u.data[si].findLast(x => x != null) : v) })),
      ],
      axes: [
        // Steps are whole numbers: no ticks at 1.5.
        { label: 'step', stroke: '#8a93a6', grid: { stroke: '#2a3142' }, ticks: { stroke: '#2a3142' },
          incrs: [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 50000, 100000] },
        // With two scales (DPO accuracy and margin) each axis takes its series' colour.
        ...scales.map((scale, i) => ({ scale, side: i === 0 ? 3 : 1, size: 60,
          stroke: scales.length > 1 ? series.find(s => (s.scale ?? 'y') === scale).color : '#8a93a6',
          grid: { show: i === 0, stroke: '#2a3142' }, ticks: { stroke: '#2a3142' }, values: (u, vals) => vals.map(v => number(v, 3)) })),
      ],
    };
  }

  dispose() { this.resize.disconnect(); this.plot?.destroy(); }
}
