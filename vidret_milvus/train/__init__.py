"""Training the fingerprint model as EP 4 390 725 A1 describes (S201-S210).

- ``data``: the training cache (Big Buck Bunny frames of the training span, photos of the
  training groups; JPEG bytes in ``train_cache/{train,val}.npz``, ~22 MB) and the pair stream.
- ``augment``: edited copies (crop, flip, colour, blur, captions/logos, JPEG, picture in picture,
  padding, perspective, rotation, grayscale), deterministic per ``np.random.Generator``.
- ``mining``: drop the nearest k % of the other samples, keep the next m as negatives.
- ``losses``: L_em, L_em', the adaptive margin, L_triplet, L_coding, L_q (variants v1, v2, fixed).
- ``trainer``: the two stages, checkpoints, resume, loss CSVs and plot.
- ``evaluate``: triplet accuracy, mAP, top-1 and Spearman on the validation split.

Entry points (CLI): ``vidret-milvus train`` (``--prepare-only``: the cache; ``--plot-only``: a
run's loss.png; ``--print-every N``: plain log lines), ``vidret-milvus train-eval`` (``--combine``:
merge runs' eval.json). Without installing the package, ``python3 -m vidret_milvus.cli ...``, as
on the GPU machine: ``scripts/train_gpu.sh``.

Choices the patent leaves open (all in ``config.py``):

- Mining is online, in the batch: "the set" is the batch's samples; samples of the same group
  (one shot of the film, one photo family) are never negatives of each other.
- The dropped count is ``floor(n * k / 100 + 1/2)`` (round half up).
- M_em = mean texture distance / mean Hamming distance between samples of different groups,
  measured on training samples with the stage-1 model at the start of stage 2 (~0.020 texture
  units per bit with Lite0), so ``margin0 * L_em,i / M_em`` is in bits.
- Variant 2 (Formula 8) carries margin_em to the Hamming scale as ``margin_em / M_em``.
- Guards that are not in the patent: the adaptive margin is capped (``stage2.max_margin``), and at
  the start of stage 2 each code bit's bias is centred on the training data
  (``stage2.center_quant``). Batch norms keep their ImageNet statistics; the backbone trains
  only its last blocks (``model.trainable``).
"""
