"""The deterministic synthetic data generator behind `redflags generate`.

`generate(out_dir, patients=N, seed=S)` writes intake, referrals, diagnoses and patients in
the canonical contracts (CSV or Parquet), chunk by chunk. Every rate, phrase and
code comes from `profile.yml` beside this file.

Modules, in the order a chunk passes through them:
- population.py: patients and presentations as they really are (truth);
- intake.py: how each presentation is documented (structured, text, codes);
- orders.py: imaging and biopsy orders, and cancer diagnoses;
- followup.py: deaths and observation periods (the patients table), imaging of other
  regions, complicating diagnoses;
- generate.py: the chunk loop and the file writers.

Scenario patterns per tier of the rules (schemas/red_flags.yml), all on back-pain
presentations, each documented in structured fields, text or codes, so the scorer meets all three):

- urgent: bladder/bowel dysfunction (about 0.3% of back-pain visits, 5-8% of
  visits with active cancer); limb weakness (0.6%; 10-15% with cancer); numbness
  or tingling in a patient with prior cancer (history of cancer, bone metastasis
  of another primary, or any visit after a recorded cancer diagnosis).
- high: prior cancer (1% of patients under 50, 6% of 50+, all bone-metastasis
  patients, every visit after a cancer diagnosis); hemoptysis at 40+ (rare,
  15% of lung-cancer visits); two or more NG12 lung symptoms at 40+, or one in
  someone who ever smoked (smokers are 38% of patients, 85% of lung cancers);
  unexplained weight loss at 50+.
- moderate: night pain, rest pain, progressive pain (4-5% each, 40-60% with
  cancer); thoracic site (8%, 40% with cancer); fever; numbness or tingling
  without prior cancer; unexplained weight loss under 50; repeat presentations
  (40% of visits follow the previous one within a few days, and cancer patients
  come back more often, so 3+ back-pain visits in 90 days occur); rising pain
  score (a per-patient base with noise of sd 0.9 gives +2 points now and then;
  active cancer adds 0.8 points per visit); persistent pain at 50+ (15% of
  episodes are chronic, 28+ days, and follow-ups count from the episode start).
- low: back pain with none of these (the majority), including sparsely
  documented ones (`sparse` mode: only back_pain, completeness under 0.5).
- not_back_pain: other complaints (30% of presentations), some with cough,
  fever or fatigue, some with "no back pain" in the text.

Cancer: about 1% of back-pain patients (age-weighted), lung primary, lung with
later bone metastasis, or bone metastasis; the onset visit shows at least one
red flag, later visits show many, and the diagnosis (C34.x, C79.51) follows the
onset by 7+ days. Orders follow the true risk imperfectly (orders.py), so care
gaps and overuse both occur.
"""

from pipelines.synth.generate import FORMATS, generate

__all__ = ["FORMATS", "generate"]
