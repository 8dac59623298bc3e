"""The demo site's cast: which patients sit in which group, what was delivered, and what PDAS should say.

Everything is drawn from one ``random.Random(seed)`` in a fixed order, so a seed always gives the
same cast. The expectations are written down as the cast is built (never computed by PDAS code),
assuming nothing has been archived yet:

- ``curation``: for each patient of the pending-archive group, the docs/contracts.md §7 ``curate``
  categories it should land in (``ready``, ``naming``, ``transitional``, ``image_only``,
  ``unreadable``; ``duplicate`` needs an archive, so none before the first run) with a reason keyword;
- ``deliveries``: every first-delivery record with the category ``scan_losses`` should give it,
  whether it lies inside the suggested scan window, and where its plan sits. A few patients were
  planned in another planning system (Monaco, Eclipse): their records are ``other_tps``, never a
  finding (docs/contracts.md §2.6).

Courses are chosen so that the 90-day gap rule (docs/contracts.md §2.8) gives the same first/re-course answer as the
explicit course numbers: the DICOM source, which has no course, must agree with the other two.
"""
from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from demo_site.rv import RvPlan
from demo_site.tree import ImageSetSpec, PlanSpec

PENDING, CLINICAL, RESEARCH, PRACTICE, TRAINING = "ToArchive", "Clinical", "Research", "Practice", "Training"
# Institution_<I> number of each group. The pending group is deliberately not Institution_1.
GROUP_IDS = {CLINICAL: 1, PENDING: 2, RESEARCH: 3, PRACTICE: 4, TRAINING: 5}
NON_CLINICAL = (RESEARCH, PRACTICE, TRAINING)
OTHER_TPS = "other_tps"  # the category of a record of another planning system (not one of the six)
WINDOW_DAYS = 180  # the suggested scan window ends the day before "today" and spans this many days
RECOURSE_GAP_DAYS = 90

CN_SURNAMES = (
    "王", "李", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "林", "罗", "高", "郑", "梁", "谢",
    "宋", "唐", "韩", "冯", "邓", "曹", "彭", "曾", "田", "董", "潘", "袁", "蔡", "蒋", "余", "于", "杜", "叶", "程", "魏", "苏", "吕",
    "丁", "任", "沈", "姚", "卢", "钟", "姜", "崔", "谭", "廖", "范", "汪", "陆", "金", "石", "戴", "夏", "邱", "方", "侯", "邹", "熊",
    "孟", "秦", "白", "江", "单", "欧阳", "司马", "诸葛", "上官"
)
CN_GIVEN = (
    "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀兰", "霞", "平", "刚",
    "桂英", "建华", "志强", "晓明", "海燕", "玉兰", "国庆", "文", "欣怡", "子轩", "浩然", "雨桐", "思远", "嘉怡", "梓涵", "一鸣", "春梅", "田芳"
)
LATIN_LAST = (
    "SMITH", "JOHNSON", "MILLER", "GARCIA", "MULLER", "ROSSI", "DUBOIS", "NGUYEN", "KIM", "TANAKA", "SILVA",
    "OCONNOR", "KOWALSKI", "HANSEN", "ANDERSSON"
)
LATIN_FIRST = (
    "JOHN", "MARY", "ANNA", "PETER", "LUCAS", "SOPHIE", "DAVID", "ELENA", "HIROSHI", "MARIA", "JAMES", "OLGA"
)
SITES = {
    "chest": (("LT BREAST", "Breast L"), ("RT BREAST", "Breast R"), ("LUNG SBRT", "Lung"), ("ESOPHAGUS", "Esophagus"),
              ("MEDIASTINUM", "Mediastinum"), ("CHEST WALL", "Chest wall")),
    "head": (("NPC VMAT", "Nasopharynx"), ("BRAIN WBRT", "Brain"), ("GBM IMRT", "Brain"), ("LARYNX", "Larynx"),
             ("OROPHARYNX", "Oropharynx")),
    "pelvis": (("PROSTATE", "Prostate"), ("CERVIX", "Cervix"), ("RECTUM", "Rectum"), ("BLADDER", "Bladder"),
               ("ENDOMETRIUM", "Uterus")),
}
TRIAL_NAMES = ("Trial_1", "IMRT", "VMAT 6X", "sMLC", "Final", "Boost 2", "Backup", "10X arc")
MACHINES = ("TrueBeam1", "Synergy2", "Halcyon3")


@dataclass
class CastPatient:
    situation: str  # a keyword saying why the patient is in the cast
    group: str
    patient_id: int
    last_name: str
    first_name: str
    mrn: str
    encoding: str
    plans: list[PlanSpec]
    image_sets: list[ImageSetSpec]
    curation: list[tuple[str, str]] = field(default_factory=list)  # (category, reason); pending group only
    truncate_patient_file: bool = False
    outside_link: bool = False  # a link inside the patient folder that points out of the TPS tree
    in_institution_file: bool = True  # False: the Institution file is stale and lacks this patient

    @property
    def tps_path(self) -> str:
        return f"Institution_{GROUP_IDS[self.group]}/Mount_0/Patient_{self.patient_id}"


@dataclass
class ExpectedDelivery:
    rv: RvPlan
    category: str
    case: str
    found_in: str = ""  # the non-clinical group where the matching plan sits
    tps_path: str = ""  # the patient folder of the plan the record matches (or that found_in names)
    plan_id: int | None = None


@dataclass
class Scenario:
    seed: int
    today: dt.datetime
    window: tuple[dt.date, dt.date]  # inclusive days
    patients: list[CastPatient]
    deliveries: list[ExpectedDelivery]
    rv_plans: list[RvPlan]  # every plan the R&V system holds, including never-delivered ones


class _Cast:
    def __init__(self, seed: int):
        self.seed = seed
        self.rng = random.Random(seed)
        self.today = dt.datetime(2024, 7, 1, 8, 0) + dt.timedelta(days=self.rng.randrange(0, 120))
        self.patients: list[CastPatient] = []
        self.deliveries: list[ExpectedDelivery] = []
        self.rv_plans: list[RvPlan] = []
        self._mrns: set[str] = set()
        self._next_patient_id = 1000
        self._next_uid = 0

    # --- drawing values ----------------------------------------------------------------------

    def mrn(self) -> str:
        while True:
            style = self.rng.random()
            if style < 0.35:
                value = f"00{self.rng.randrange(0, 10 ** 4):04d}"  # leading zeros that must survive
            elif style < 0.85:
                value = f"{self.rng.choice((2019, 2020, 2021, 2022, 2023))}{self.rng.randrange(0, 10 ** 6):06d}"
            else:
                value = f"ZY{self.rng.randrange(10 ** 5, 10 ** 6)}"
            if value not in self._mrns:
                self._mrns.add(value)
                return value

    def name(self, kind: str | None = None) -> tuple[str, str, str]:
        """(last, first, encoding): Chinese names in GB18030 or UTF-8 files, Latin ones in UTF-8."""
        kind = kind or ("latin" if self.rng.random() < 0.25 else "chinese")
        if kind == "latin":
            return self.rng.choice(LATIN_LAST), self.rng.choice(LATIN_FIRST), "utf-8"
        encoding = "gb18030" if self.rng.random() < 0.5 else "utf-8"
        return self.rng.choice(CN_SURNAMES), self.rng.choice(CN_GIVEN), encoding

    def uid(self) -> str:
        self._next_uid += 1
        return f"1.2.826.0.1.3680043.10.1138.7.{self.seed}.{self._next_uid}"

    def days_ago(self, low: float, high: float) -> dt.datetime:
        """A working-hours moment ``low``..``high`` days before today (whole seconds)."""
        day = self.today - dt.timedelta(days=self.rng.randint(int(low), int(high)))
        return day.replace(hour=self.rng.randint(8, 16), minute=self.rng.randrange(60), second=self.rng.randrange(60))

    def site(self, region: str | None = None) -> tuple[str, str, str]:
        region = region or self.rng.choice(tuple(SITES))
        label, site_name = self.rng.choice(SITES[region])
        return region, label, site_name

    def trials(self) -> list[str]:
        return self.rng.sample(TRIAL_NAMES, self.rng.choice((1, 1, 2, 3)))

    # --- building ----------------------------------------------------------------------------

    def plan(self, plan_id: int, name: str, created: dt.datetime, *, trials: list[str] | None = None,
             **overrides) -> PlanSpec:
        written = created + dt.timedelta(minutes=self.rng.randint(5, 240))
        # Saved again within three days, but never after "today" (a future mtime is another story).
        modified: dt.datetime | str = min(written + dt.timedelta(hours=self.rng.randint(1, 72)),
                                          max(written, self.today - dt.timedelta(minutes=45)))
        if self.rng.random() < 0.1:
            modified = ""  # Pinnacle leaves LastModifiedTimeStamp empty on some saves
        values = dict(plan_id=plan_id, name=name, trials=trials or self.trials(), created=created, written=written,
                      modified=modified, stamp_sep="." if self.rng.random() < 0.3 else " ",
                      junk=self.rng.random() < 0.25, beams=self.rng.randint(1, 3))
        values.update(overrides)
        return PlanSpec(**values)

    def image_sets(self, region: str, scanned: dt.datetime, *, count: int | None = None) -> list[ImageSetSpec]:
        count = count or (2 if self.rng.random() < 0.2 else 1)
        sets = [ImageSetSpec(0, "CT", region=region, series_description=region.upper(), scanned=scanned)]
        if count > 1:
            sets.append(ImageSetSpec(1, "MR", region=region, series_description=f"{region.upper()} T1",
                                     scanned=scanned + dt.timedelta(hours=2)))
        return sets

    def patient(self, situation: str, group: str, plans: list[PlanSpec], *, region: str, name=None, mrn=None,
                curation=(("ready", "ready"),), scanned: dt.datetime | None = None, image_sets=None,
                **flags) -> CastPatient:
        last, first, encoding = name or self.name()
        self._next_patient_id += 1
        if scanned is None:
            created = [p.created if isinstance(p.created, dt.datetime) else p.written for p in plans]
            scanned = (min(created) if created else self.days_ago(15, 40)) - dt.timedelta(days=2)
            scanned = scanned.replace(hour=self.rng.randint(8, 11))
        patient = CastPatient(
            situation=situation, group=group, patient_id=self._next_patient_id, last_name=last, first_name=first,
            mrn=self.mrn() if mrn is None else mrn, encoding=encoding, plans=plans,
            image_sets=image_sets if image_sets is not None else self.image_sets(region, scanned),
            curation=list(curation) if group == PENDING else [], **flags,
        )
        self.patients.append(patient)
        return patient

    def rv_plan(self, *, mrn: str, name: tuple[str, str], label: str, site_name: str, first: dt.datetime,
                course: int | None, created: dt.datetime, qa_runs: int = 0, delivered: bool = True,
                **extra) -> RvPlan:
        """A plan of the R&V system: fractions on consecutive days from ``first`` (none if not ``delivered``)."""
        later = [first + dt.timedelta(days=k, minutes=self.rng.randint(-20, 20))
                 for k in range(1, self.rng.randint(3, 5))]
        plan = RvPlan(
            mrn=mrn, last_name=name[0], first_name=name[1], label=label, uid=self.uid(), course=course,
            site_name=site_name, machine=self.rng.choice(MACHINES), created=created,
            fractions=[first, *later] if delivered else [],
            qa_runs=[first - dt.timedelta(days=1 + k, hours=2) for k in range(qa_runs)],
            beams=self.rng.randint(2, 4), **extra,
        )
        self.rv_plans.append(plan)
        return plan

    def deliver(self, patient: CastPatient | None, plan: PlanSpec | None, first: dt.datetime, *, category: str,
                case: str, course: int | None = 1, label: str | None = None, site_name: str = "Rx",
                found_in: str = "", mrn: str | None = None, name: tuple[str, str] | None = None,
                **extra) -> ExpectedDelivery:
        """Record that ``plan`` of ``patient`` (or a plan the TPS no longer has) was first delivered at ``first``."""
        created = plan.created if plan and isinstance(plan.created, dt.datetime) else first - dt.timedelta(days=7)
        rv = self.rv_plan(
            mrn=mrn if mrn is not None else patient.mrn,
            name=name or (patient.last_name, patient.first_name),
            label=label or plan.name, site_name=site_name, first=first, course=course, created=created,
            qa_runs=self.rng.randint(0, 2), **extra,
        )
        matched = category.endswith("unarchived") or bool(found_in)
        expected = ExpectedDelivery(
            rv=rv, category=category, case=case, found_in=found_in,
            tps_path=patient.tps_path if (patient and matched) else "",
            plan_id=plan.plan_id if (plan and matched) else None,
        )
        self.deliveries.append(expected)
        return expected


# --- the cast ------------------------------------------------------------------------------------


def make_scenario(*, seed: int, patients: int) -> Scenario:
    """The whole cast. ``patients`` is the size of the pending group (the fixed cast at least)."""
    c = _Cast(seed)
    _pending_cast(c)
    cast_size = len(c.patients)
    for _ in range(max(0, patients - cast_size)):
        _ready_patient(c)
    _other_groups(c)
    _other_planning_systems(c)
    window = ((c.today - dt.timedelta(days=WINDOW_DAYS)).date(), (c.today - dt.timedelta(days=1)).date())
    return Scenario(seed=seed, today=c.today, window=window, patients=c.patients, deliveries=c.deliveries,
                    rv_plans=c.rv_plans)


def _delivered_plan(c: _Cast, *, first: dt.datetime, plan_id: int = 0, region: str | None = None,
                    label: str | None = None, **overrides) -> tuple[PlanSpec, str, str]:
    """A plan created 3-20 days before its first delivery; (spec, region, site name)."""
    region, name, site_name = c.site(region)
    created = (first - dt.timedelta(days=c.rng.randint(3, 20))).replace(hour=c.rng.randint(9, 17))
    return c.plan(plan_id, label or name, created, **overrides), region, site_name


def _pending_cast(c: _Cast) -> None:
    # Ready patients whose delivered plans wait in the pending group: unarchived.
    first = c.days_ago(30, 150)
    plan, region, site = _delivered_plan(c, first=first, region="chest", label="LT BREAST", trials=["sMLC"])
    p = c.patient("ready_gb18030", PENDING, [plan], region=region, name=("张", "三", "gb18030"))
    c.deliver(p, plan, first, category="first_course_unarchived", case="pending", site_name=site)
    # A verification plan run on the machine in QA mode only: the R&V system holds it, nothing was delivered.
    c.rv_plan(mrn=p.mrn, name=(p.last_name, p.first_name), label="BREAST QA", site_name="QA", first=first,
              course=1, created=first - dt.timedelta(days=2), qa_runs=2, delivered=False)

    first = c.days_ago(30, 150)
    plan, region, site = _delivered_plan(c, first=first, region="head", label="NPC VMAT")
    # CreateTimeStamp empty: the creation time is the WriteTimeStamp (docs/contracts.md §1.3).
    plan.written, plan.created = plan.created, ""
    p = c.patient("ready_utf8_no_create_time", PENDING, [plan], region=region, name=("欧阳", "娜娜", "utf-8"))
    c.deliver(p, plan, first, category="first_course_unarchived", case="label_case_differs", label="npc vmat",
              site_name=site)

    first = c.days_ago(30, 150)
    plan, region, site = _delivered_plan(c, first=first, region="chest", label="RT LUNG",
                                         trials=["Trial_1", "LUNG SBRT"])
    p = c.patient("ready_trial_label", PENDING, [plan], region=region, name=c.name("latin"))
    c.deliver(p, plan, first, category="first_course_unarchived", case="label_is_trial_name", label="LUNG SBRT",
              site_name=site)

    # Two plans of one course (a boost 25 days later): both first course, by number and by the gap rule.
    first = c.days_ago(60, 150)
    plan_a, region, site = _delivered_plan(c, first=first, region="pelvis", label="CERVIX")
    boost_first = first + dt.timedelta(days=25)
    plan_b, _, _ = _delivered_plan(c, first=boost_first, plan_id=1, region="pelvis", label="CERVIX BOOST")
    p = c.patient("first_course_two_plans", PENDING, [plan_a, plan_b], region=region)
    c.deliver(p, plan_a, first, category="first_course_unarchived", case="pending", site_name=site)
    c.deliver(p, plan_b, boost_first, category="first_course_unarchived", case="boost_same_course", site_name=site,
              label_in_rtplan=False)  # MOSAIQ knows this one's label only from Site_Name

    # A re-course (course 2) whose prescription was edited after the first fractions (MOSAIQ trap).
    first = c.days_ago(160, 170)
    second = first + dt.timedelta(days=c.rng.randint(120, 140))
    plan_a, region, site_a = _delivered_plan(c, first=first, region="chest", label="LT BREAST")
    plan_b, _, _ = _delivered_plan(c, first=second, plan_id=1, region="head", label="BRAIN WBRT")
    p = c.patient("recourse_edited_prescription", PENDING, [plan_a, plan_b], region=region)
    c.deliver(p, plan_a, first, category="first_course_unarchived", case="pending", site_name=site_a)
    c.deliver(p, plan_b, second, course=2, category="recourse_unarchived", case="recourse_prescription_edited",
              site_name="Brain", old_site_course=1)

    # The re-course plan was deleted from the TPS: lost.
    first = c.days_ago(160, 170)
    second = first + dt.timedelta(days=c.rng.randint(125, 145))
    plan_a, region, site = _delivered_plan(c, first=first, region="pelvis", label="PROSTATE")
    p = c.patient("recourse_plan_deleted", PENDING, [plan_a], region=region)
    c.deliver(p, plan_a, first, category="first_course_unarchived", case="pending", site_name=site)
    c.deliver(p, None, second, course=2, label="PELVIS LN", category="recourse_lost", case="recourse_deleted",
              site_name="Pelvic nodes")

    # No course numbers at all: only the 90-day gap rule tells the second plan is a re-course, and
    # the first plan lies before the scan window (the rule must use all history).
    first = c.today - dt.timedelta(days=320, hours=-1)
    second = first + dt.timedelta(days=c.rng.randint(200, 220))
    plan_a, region, site_a = _delivered_plan(c, first=first, region="pelvis", label="RT HIP")
    plan_b, _, site_b = _delivered_plan(c, first=second, plan_id=1, region="pelvis", label="L-SPINE")
    p = c.patient("recourse_by_gap_only", PENDING, [plan_a, plan_b], region=region)
    c.deliver(p, plan_a, first, course=None, category="first_course_unarchived", case="before_window_no_course",
              site_name="Hip R")
    c.deliver(p, plan_b, second, course=None, category="recourse_unarchived", case="recourse_by_gap",
              site_name="Spine L")

    # One plan kept, another of the same course deleted from the TPS.
    first = c.days_ago(60, 140)
    plan_a, region, site = _delivered_plan(c, first=first, region="pelvis", label="ABDOMEN")
    p = c.patient("plan_deleted", PENDING, [plan_a], region=region)
    c.deliver(p, plan_a, first, category="first_course_unarchived", case="pending", site_name=site)
    c.deliver(p, None, first + dt.timedelta(days=30), label="LIVER SBRT", category="first_course_lost",
              case="plan_deleted", site_name="Liver")

    # The plan of that name was created after the delivery (re-planned, the original deleted): no match.
    first = c.days_ago(40, 140)
    replanned = c.plan(0, "RT BREAST", first + dt.timedelta(days=10, hours=2))
    p = c.patient("created_after_delivery", PENDING, [replanned], region="chest")
    c.deliver(p, None, first, label="RT BREAST", category="first_course_lost", case="plan_created_after_delivery",
              site_name="Breast R")

    # Curation situations.
    def simple(situation, names=None, *, curation, plan_names=None, **kwargs):
        created = c.days_ago(20, 60)
        plans = [c.plan(i, n, created + dt.timedelta(days=i)) for i, n in enumerate(plan_names or [c.site()[1]])]
        return c.patient(situation, PENDING, plans, region="chest", name=names, curation=curation, **kwargs)

    simple("naming_empty_first_name", (c.rng.choice(CN_SURNAMES), "", "utf-8"),
           curation=[("naming", "first_name_empty")])
    simple("naming_mrn_missing", mrn="", curation=[("naming", "mrn_missing")])
    simple("naming_slash_in_name", ("WANG/LI", "HUA", "utf-8"), curation=[("naming", "bad_character")])
    simple("naming_asterisk_in_name", ("ZHAO", "MING*", "utf-8"), curation=[("naming", "bad_character")])
    simple("transitional_copy", plan_names=["LUNG", "CopyOf_1_LUNG"], curation=[("transitional", "copy_plan")])
    simple("transitional_test", plan_names=["TEST"], curation=[("transitional", "test_plan")])
    simple("transitional_qa", plan_names=["QA"], curation=[("transitional", "qa_plan")])
    scanned = c.days_ago(20, 60)
    c.patient("image_only", PENDING, [], region="head", curation=[("image_only", "no_plans")],
              image_sets=c.image_sets("head", scanned, count=2), scanned=scanned)
    simple("unreadable_truncated_patient_file", curation=[("unreadable", "patient_file_truncated")],
           truncate_patient_file=True)
    p = simple("unreadable_plan_dir_missing", plan_names=["PELVIS", "PELVIS 2"],
               curation=[("unreadable", "plan_directory_missing")])
    p.plans[1].directory = False
    twin = c.name()
    # Two patients sharing an MRN is a naming finding on both (``duplicate`` means identical content
    # already in a verified archive).
    first_twin = simple("duplicate_mrn", twin, curation=[("naming", "same_mrn_as_other_patient")])
    simple("duplicate_mrn", twin, mrn=first_twin.mrn, curation=[("naming", "same_mrn_as_other_patient")])
    simple("symlink_outside", curation=[("unreadable", "link_not_followed")], outside_link=True)
    simple("missing_from_institution_file", curation=[("ready", "ready")], in_institution_file=False)


def _ready_patient(c: _Cast) -> None:
    """A patient whose treatment is over: one or two plans, most of them delivered."""
    first = c.days_ago(10, 170)
    plan, region, site = _delivered_plan(c, first=first)
    plans = [plan]
    firsts = [first]
    if c.rng.random() < 0.25:
        _, label, _ = c.site(region)
        if label != plan.name:
            second = first + dt.timedelta(days=c.rng.randint(5, 40))
            if second < c.today - dt.timedelta(days=8):
                extra, _, _ = _delivered_plan(c, first=second, plan_id=1, region=region, label=label)
                plans.append(extra)
                firsts.append(second)
    p = c.patient("ready", PENDING, plans, region=region)
    # All of a ready patient's plans were delivered, or none yet: a plan left undelivered beside a
    # delivered sibling is what curation flags as transitional.
    if c.rng.random() < 0.85:
        for plan, when in zip(plans, firsts):
            c.deliver(p, plan, when, category="first_course_unarchived", case="pending", site_name=site)


def _other_groups(c: _Cast) -> None:
    # Clinical: patients under treatment, one of them on a re-course.
    first = c.today - dt.timedelta(days=300, hours=-2)
    second = c.days_ago(50, 70)
    plan_a, region, _ = _delivered_plan(c, first=first, region="chest", label="T-SPINE")
    plan_b, _, _ = _delivered_plan(c, first=second, plan_id=1, region="chest", label="C-SPINE")
    p = c.patient("clinical_recourse", CLINICAL, [plan_a, plan_b], region=region)
    c.deliver(p, plan_a, first, category="first_course_unarchived", case="clinical_before_window", site_name="Spine T")
    c.deliver(p, plan_b, second, course=2, category="recourse_unarchived", case="clinical_recourse",
              site_name="Spine C")
    for _ in range(2):
        first = c.days_ago(10, 40)
        plan, region, site = _delivered_plan(c, first=first)
        p = c.patient("clinical", CLINICAL, [plan], region=region)
        c.deliver(p, plan, first, category="first_course_unarchived", case="clinical", site_name=site)
    c.patient("clinical_not_delivered", CLINICAL, [c.plan(0, c.site()[1], c.days_ago(1, 5))], region="chest")

    # A delivered plan that now sits only in a non-clinical group: lost, with a hint where it is.
    for group, label in ((RESEARCH, "LT LUNG"), (PRACTICE, "PROSTATE VMAT")):
        first = c.days_ago(60, 150)
        plan, region, site = _delivered_plan(c, first=first, label=label)
        p = c.patient(f"moved_to_{group.lower()}", group, [plan], region=region)
        c.deliver(p, plan, first, category="first_course_lost", case="moved_to_non_clinical", found_in=group,
                  site_name=site)
    for group, plan_name in ((RESEARCH, "PHANTOM STUDY"), (PRACTICE, "PRACTICE 1"), (TRAINING, "TRAINING IMRT")):
        c.patient(f"{group.lower()}_only", group, [c.plan(0, plan_name, c.days_ago(100, 300))], region="pelvis")

    # A patient deleted from the TPS altogether.
    first = c.days_ago(30, 150)
    last, given, _ = c.name()
    c.deliver(None, None, first, label="RT PAROTID", category="first_course_lost", case="patient_deleted",
              mrn=c.mrn(), name=(last, given), site_name="Parotid R")


def _other_planning_systems(c: _Cast) -> None:
    """Patients planned in another planning system and treated through the same R&V system: never in the
    Pinnacle tree, so without the ``planning_systems`` rule they would look lost. Drawn last, so that the
    rest of the cast (and every count of it) is the same with or without them."""
    for tps, region in (("Monaco", "head"), ("Monaco", "pelvis"), ("Eclipse", "chest")):
        first = c.days_ago(20, 150)
        _, label, site_name = c.site(region)
        last, given, _ = c.name()
        c.deliver(None, None, first, label=label, category=OTHER_TPS, case=f"planned_in_{tps.lower()}",
                  mrn=c.mrn(), name=(last, given), site_name=site_name, tps=tps)
