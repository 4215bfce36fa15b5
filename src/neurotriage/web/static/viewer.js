// NiiVue viewer of one finding: a sequence with the segmentation overlaid, radiological convention.
import { Niivue, SHOW_RENDER } from "/static/niivue.js";

const canvas = document.getElementById("viewer");
const config = JSON.parse(canvas.dataset.config);
const status = document.getElementById("viewer-status");
const sequence = document.getElementById("sequence");
const opacity = document.getElementById("opacity");

const nv = new Niivue({
  isRadiologicalConvention: true, // the PNG reports put the patient's left on the image's right too
  isOrientationTextVisible: true, // L/R (and A/P, S/I) markers on every 2D view
  showAllOrientationMarkers: true, // all four edges, so both R and L show, not only the left/top ones
  show3Dcrosshair: true,
  crosshairColor: [1, 1, 0, 1],
  backColor: [0, 0, 0, 1],
  // Three slice views, no 3D render tile: it adds little for triage and is slow without a GPU.
  multiplanarShowRender: SHOW_RENDER.NEVER,
});
nv.attachToCanvas(canvas);
window.neurotriageViewer = nv; // for the browser tests and the developer console
nv.setSliceType(nv.sliceTypeMultiplanar);
nv.onLocationChange = (data) => {
  document.getElementById("viewer-location").textContent = data.string;
};

function atCentroid() {
  if (config.centroid_mm) {
    nv.scene.crosshairPos = nv.mm2frac(config.centroid_mm);
  }
  nv.updateGLVolume();
}

async function show(key) {
  status.textContent = "Loading images…";
  canvas.dataset.ready = "0";
  const keep = config.centroid_mm ? null : nv.scene.crosshairPos;
  await nv.loadVolumes([
    { url: config.images[key], name: `${key}.nii.gz` },
    { url: config.seg, name: "seg.nii.gz", opacity: Number(opacity.value) },
  ]);
  nv.volumes[1].setColormapLabel(config.lut);
  nv.setRadiologicalConvention(true);
  if (keep) nv.scene.crosshairPos = keep;
  atCentroid();
  status.textContent = `${sequence.selectedOptions[0].text} with segmentation. Click to move the crosshair.`;
  canvas.dataset.ready = "1";
}

sequence.addEventListener("change", () => show(sequence.value));
opacity.addEventListener("input", () => nv.setOpacity(1, Number(opacity.value)));
show(sequence.value).catch((err) => {
  status.textContent = `The viewer could not load the images: ${err}`;
  canvas.dataset.ready = "error";
});
