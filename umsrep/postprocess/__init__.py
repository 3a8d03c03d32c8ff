"""Post-processing of segmentation outputs: dense CRF refinement and ultrasound mask clean-up."""
