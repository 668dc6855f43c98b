# Makes the segmentation reference fixtures: see README.md.
import sys, numpy as np
from skimage import data, transform, io
import mediapipe as mp
img = data.astronaut()  # 512x512 RGB, public domain (NASA)
out = sys.argv[1]
for name, (w, h), sel in [("general", (256, 256), 0), ("landscape", (256, 144), 1)]:
    if name == "general":
        small = transform.resize(img, (h, w), anti_aliasing=True)
    else:
        # the top 288 rows of the photo, as a landscape frame
        small = transform.resize(img[64:64+288, :], (h, w), anti_aliasing=True)
    small = (small * 255).round().astype(np.uint8)
    io.imsave(f"{out}/astronaut-{w}x{h}.png", small, check_contrast=False)
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=sel) as seg:
        r = seg.process(small)
    m = r.segmentation_mask
    print(name, m.shape, m.dtype, float(m.min()), float(m.max()), float((m > 0.5).mean()))
    np.save(f"{out}/mask-{name}.npy", m.astype(np.float32))
    io.imsave(f"{out}/mask-{name}.png", (np.clip(m, 0, 1) * 255).round().astype(np.uint8), check_contrast=False)
