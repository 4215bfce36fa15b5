// NiiVue viewer of one finding: one sequence under the segmentation, drawn as the PNG report figures are
// (radiological convention, sagittal with the nose on the left), with the label under the crosshair, slice
// numbers, keyboard slice moves, window presets, 1-up / 3-up layouts, label toggles, a ruler and, off by
// default, the uncertainty map in heat colours.
import { DRAG_MODE, NVImage, Niivue, SHOW_RENDER, SLICE_TYPE } from "/static/niivue.js";

const $ = (id) => document.getElementById(id);
const canvas = $("viewer");
const config = JSON.parse(canvas.dataset.config);
const status = $("viewer-status");
const controls = {
  sequence: $("sequence"),
  layout: $("layout"),
  tool: $("tool"),
  preset: $("window-preset"),
  style: $("overlay-style"),
  opacity: $("opacity"),
  reset: $("reset-view"),
};
const toggles = [...document.querySelectorAll(".label-toggle")];
const uncertaintyToggle = $("uncertainty-toggle"); // absent when the finding has no uncertainty map

const VIEWS = [SLICE_TYPE.AXIAL, SLICE_TYPE.CORONAL, SLICE_TYPE.SAGITTAL];
const VIEW_NAMES = ["axial", "coronal", "sagittal"]; // indexed by SLICE_TYPE
// The RAS voxel axis each view steps through: axial inferior→superior, coronal posterior→anterior,
// sagittal left→right (NiiVue's RAS voxel order).
const SLICE_AXIS = [2, 1, 0];
const LAYOUTS = {
  multiplanar: SLICE_TYPE.MULTIPLANAR,
  axial: SLICE_TYPE.AXIAL,
  coronal: SLICE_TYPE.CORONAL,
  sagittal: SLICE_TYPE.SAGITTAL,
};
const KEY_STEPS = { ArrowUp: 1, ArrowDown: -1, PageUp: 10, PageDown: -10 };
// Left-button drag of each mouse tool; the right button sets window/level except when panning.
const TOOLS = {
  crosshair: DRAG_MODE.crosshair,
  windowing: DRAG_MODE.windowing,
  pan: DRAG_MODE.pan,
  measurement: DRAG_MODE.measurement,
};
// Display ranges from the image's own intensities: NiiVue's robust range (2nd-98th percentile of the
// non-zero voxels, i.e. the brain), its middle half, or everything from the darkest to the brightest voxel.
const PRESETS = {
  auto: (image) => [image.robust_min, image.robust_max],
  narrow: (image) => {
    const centre = (image.robust_min + image.robust_max) / 2;
    const half = (image.robust_max - image.robust_min) / 4;
    return [centre - half, centre + half];
  },
  wide: (image) => [image.global_min, image.global_max],
};
const NIFTI_INTENT_LABEL = 1002; // NiiVue draws label outlines only for volumes marked as label maps
const HEAT_OPACITY = 0.7;

const nv = new Niivue({
  isRadiologicalConvention: true, // the PNG reports put the patient's left on the image's right too
  sagittalNoseLeft: true, // and draw sagittal slices with anterior on the image's left
  isOrientationTextVisible: true, // L/R (and A/P, S/I) markers on every 2D view
  showAllOrientationMarkers: true, // all four edges, so both R and L show, not only the left/top ones
  // Room for the edge letters: a margin inside each tile of the 3-up layout (NiiVue sizes it from the
  // font) and a gap between tiles, so letters neither touch the canvas edge nor a neighbour's letters.
  tileMargin: -1,
  multiplanarPadPixels: 16,
  fontColor: [0.85, 0.85, 0.85, 1],
  rulerColor: [0, 1, 1, 1], // the measurement line
  measureLineColor: [0, 1, 1, 1], // and its ends
  measureTextColor: [1, 1, 1, 1],
  show3Dcrosshair: true,
  crosshairColor: [1, 1, 0, 1],
  backColor: [0, 0, 0, 1],
  // Three slice views, no 3D render tile: it adds little for triage and is slow without a GPU.
  multiplanarShowRender: SHOW_RENDER.NEVER,
});
nv.attachToCanvas(canvas);
window.neurotriageViewer = nv; // for the browser tests and the developer console

const images = new Map(); // sequence key -> Promise of its NVImage: each sequence is downloaded once
let seg = null; // the overlay shown: the segmentation without the hidden labels
let storedLabels = null; // the segmentation as stored, for the label readout of hidden labels too
let activeView = SLICE_TYPE.AXIAL; // the view the keys move: the one shown alone, or last clicked
let heat = null; // Promise of the uncertainty layer: downloaded the first time it is shown

function imageOf(key) {
  if (!images.has(key)) {
    const loading = NVImage.loadFromUrl({ url: config.images[key], name: `${key}.nii.gz` });
    images.set(key, loading);
    loading.catch(() => images.delete(key)); // a failed download may be tried again
  }
  return images.get(key);
}

function title() {
  return controls.sequence.selectedOptions[0].text;
}

function round(value) {
  return Math.round(value * 10) / 10;
}

function labelName(value) {
  const index = config.lut.I.indexOf(value);
  return (index >= 0 && config.lut.labels[index]) || "none";
}

function hiddenValues() {
  return new Set(toggles.filter((t) => !t.checked).flatMap((t) => t.dataset.values.split(",").map(Number)));
}

function showLocation() {
  const mm = nv.frac2mm(nv.scene.crosshairPos);
  const xyz = [mm[0], mm[1], mm[2]];
  const background = nv.volumes[0];
  const value = background.getValue(...background.mm2vox(xyz));
  const label = Math.round(storedLabels.getValue(...storedLabels.mm2vox(xyz)));
  const hidden = hiddenValues().has(label) ? " (hidden)" : "";
  $("viewer-location").textContent =
    `${xyz.map((c) => c.toFixed(1)).join(", ")} mm · ${title()} ${round(value)} · label: ${labelName(label)}${hidden}`;
}

function showSlices() {
  const vox = nv.frac2vox(nv.scene.crosshairPos);
  const dims = nv.back.dimsRAS;
  const parts = VIEWS.map((view) => {
    const axis = SLICE_AXIS[view];
    const part = document.createElement("span");
    part.id = `slice-${VIEW_NAMES[view]}`;
    part.className = view === activeView ? "active" : "";
    part.textContent = `${VIEW_NAMES[view]} ${vox[axis] + 1}/${dims[axis + 1]}`;
    return part;
  });
  $("viewer-slices").replaceChildren("Slice: ", ...parts.flatMap((p, i) => (i ? [" · ", p] : [p])));
}

function showWindow() {
  const image = nv.volumes[0];
  const width = image.cal_max - image.cal_min;
  $("window-readout").textContent = `W ${round(width)} · L ${round(image.cal_min + width / 2)}`;
}

function showState() {
  showLocation();
  showSlices();
  showWindow();
}

nv.onLocationChange = (data) => {
  if (VIEWS.includes(data.axCorSag)) activeView = data.axCorSag;
  showState();
};

nv.onMeasurementCompleted = (measurement) => {
  const item = document.createElement("li");
  item.textContent = `${round(measurement.distance)} mm (${VIEW_NAMES[measurement.sliceType] ?? "slice"})`;
  $("rulers").append(item);
};

function setWindow(image) {
  [image.cal_min, image.cal_max] = PRESETS[controls.preset.value](image);
}

function refresh(volume) {
  // Re-render one volume's layer: updateGLVolume would rebuild every layer, which takes seconds where
  // WebGL runs in software (no GPU), for a change to one of them.
  nv.refreshLayers(volume, nv.volumes.indexOf(volume));
  nv.drawScene();
}

function setOverlayStyle() {
  // Fill: the labels at the slider's opacity. Outline: only each label's border, at that opacity.
  const alpha = Number(controls.opacity.value);
  const outline = controls.style.value === "outline";
  nv.opts.atlasOutline = outline ? alpha : 0;
  seg.opacity = outline ? 0 : alpha;
}

function hideLabels() {
  const hidden = hiddenValues();
  seg.img = hidden.size ? storedLabels.img.map((v) => (hidden.has(v) ? 0 : v)) : storedLabels.img.slice();
}

function styleOverlay() {
  setOverlayStyle();
  refresh(seg);
}

function showLabels() {
  hideLabels();
  refresh(seg);
  showLocation();
}

function heatLayer() {
  if (!heat) {
    // Values below cal_min stay clear, as in the report's figure; the file's scale makes them 0 to 1.
    const options = { url: config.uncertainty, name: "uncertainty.nii.gz", colormap: "hot", opacity: 0 };
    heat = NVImage.loadFromUrl({ ...options, cal_min: config.uncertainty_from, cal_max: 1 }).then((image) => {
      nv.addVolume(image);
      return image;
    });
    heat.catch(() => (heat = null)); // a failed download may be tried again
  }
  return heat;
}

async function showUncertainty() {
  const layer = await heatLayer();
  layer.opacity = uncertaintyToggle.checked ? HEAT_OPACITY : 0;
  refresh(layer);
}

function setTool(name) {
  nv.opts.dragModePrimary = TOOLS[name];
  nv.setDragMode(name === "pan" ? DRAG_MODE.pan : DRAG_MODE.windowing); // in pan mode the wheel zooms
}

function setLayout(name) {
  const sliceType = LAYOUTS[name];
  nv.setSliceType(sliceType);
  if (sliceType === SLICE_TYPE.MULTIPLANAR) {
    nv.clearCustomLayout();
  } else {
    activeView = sliceType;
    // One view as a tile fitted to the image: NiiVue's own 1-up stretches the view to the canvas and
    // puts the edge letters on the canvas's edge, where the right-hand one is cut off.
    nv.setCustomLayout([{ sliceType, position: [0, 0, 1, 1] }]);
  }
  showSlices();
}

function moveSlice(event) {
  const step = KEY_STEPS[event.key];
  if (step === undefined) return;
  event.preventDefault(); // the keys move slices, not the page
  const move = [0, 0, 0];
  move[SLICE_AXIS[activeView]] = step;
  nv.moveCrosshairInVox(...move);
}

function resetView() {
  controls.preset.value = "auto";
  setWindow(nv.volumes[0]);
  nv.setPan2Dxyzmm([0, 0, 0, 1]);
  nv.clearAllMeasurements();
  $("rulers").replaceChildren();
  refresh(nv.volumes[0]);
  showWindow();
}

function busy() {
  status.textContent = "Loading images…";
  canvas.dataset.ready = "0";
}

function ready() {
  status.textContent = `${title()} with segmentation. Click to move the crosshair.`;
  canvas.dataset.ready = "1";
  showState();
}

function failed(err) {
  status.textContent = `The viewer could not load the images: ${err}`;
  canvas.dataset.ready = "error";
}

async function start() {
  busy();
  const [image, labels] = await Promise.all([
    imageOf(controls.sequence.value),
    NVImage.loadFromUrl({ url: config.seg, name: "seg.nii.gz" }),
  ]);
  labels.hdr.intent_code = NIFTI_INTENT_LABEL;
  labels.setColormapLabel(config.lut);
  storedLabels = labels.clone();
  seg = labels;
  // The controls as the page shows them (a reload may keep earlier choices).
  hideLabels();
  setOverlayStyle();
  setWindow(image);
  nv.addVolume(image);
  nv.addVolume(seg);
  setLayout(controls.layout.value);
  if (config.centroid_mm) nv.scene.crosshairPos = nv.mm2frac(config.centroid_mm);
  if (uncertaintyToggle?.checked) await showUncertainty();
  nv.drawScene();
}

async function showSequence(key) {
  busy();
  const image = await imageOf(key);
  if (controls.sequence.value !== key) return; // another sequence was chosen while this one loaded
  const mm = nv.frac2mm(nv.scene.crosshairPos);
  setWindow(image);
  nv.volumes[0] = image; // swap the background in place; setVolume rebuilds NiiVue's layers from the list
  nv.setVolume(image, 0);
  nv.scene.crosshairPos = nv.mm2frac(mm);
  nv.drawScene();
  ready();
}

function listen() {
  controls.sequence.addEventListener("change", () => showSequence(controls.sequence.value).catch(failed));
  controls.layout.addEventListener("change", () => setLayout(controls.layout.value));
  controls.tool.addEventListener("change", () => setTool(controls.tool.value));
  controls.preset.addEventListener("change", () => {
    setWindow(nv.volumes[0]);
    refresh(nv.volumes[0]);
    showWindow();
  });
  controls.style.addEventListener("change", styleOverlay);
  controls.opacity.addEventListener("input", styleOverlay);
  controls.reset.addEventListener("click", resetView);
  toggles.forEach((t) => t.addEventListener("change", showLabels));
  uncertaintyToggle?.addEventListener("change", () => showUncertainty().catch(failed));
  canvas.addEventListener("keydown", moveSlice);
  canvas.addEventListener("mouseup", showWindow); // after a window/level drag
}

setTool(controls.tool.value);
start()
  .then(() => {
    listen();
    ready();
  })
  .catch(failed);
