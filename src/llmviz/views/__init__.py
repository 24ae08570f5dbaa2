"""What the page is handed about a pass: the 3D scene and its layout, hover provenance, the logit lens, the
branch tree and the walkthrough."""
