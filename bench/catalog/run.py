"""Catalog search speed: the columnar index (GraphQL over HTTP) against SPARQL on Oxigraph and rdflib.

    .venv/bin/python -m bench.catalog.run --collections 100000

generates stations x collections with skewed values (Zipf-like modalities, body parts and
manufacturers, log-normal subject counts, some suppressed; about 34 triples per collection),
bulk-loads them into the hub's embedded Oxigraph store, starts the real hub under uvicorn on
loopback (which builds its search index from the store; the guests' view of the store, with
rounded counts, is made once before, as a hub's first start would), and runs a fixed mix of faceted searches
(1-3 filters + first page of 20 sorted by subjects + 4 facet counts):

* end to end through GraphQL over HTTP as a logged-in member (exact counts), every query of the
  mix (p50/p99), after 5 warm-up queries;
* as SPARQL on the same Oxigraph store, in-process, on the first ``--sparql-queries`` of the mix;
* as SPARQL on rdflib's in-memory store, on ``--rdflib-collections`` collections and a few queries;

and compares the answers (page ids and facet counts) of the index with SPARQL's, and the pages a
guest gets (sorted on rounded counts) with SPARQL sorting on the same rounding. Then a station
enrolled over HTTP publishes a new collection and republishes it (signed, SHACL-validated, graph
replaced) and the time until a GraphQL search over HTTP finds each is measured. Phase timings go
to stderr. Writes ``bench/results/catalog.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyoxigraph as ox
import rdflib
from sqlmodel import Session

from bench._serve import serve_on_loopback
from hub import Settings, create_app, crud
from hub.catalog.index import GUEST_STEP, SearchIndex, SearchQuery, records_from_store
from hub.catalog.store import CatalogStore
from hub.models import UserCreate
from ontology import CODE_LISTS
from protocol import CollectionSummary, Role, generate_key_pair

RESULTS = Path(__file__).resolve().parents[1] / "results" / "catalog.json"
PASSWORD = "bench-catalog-password"
TY = "https://w3id.org/trainyard/ontology#"
DCM = "http://dicom.nema.org/resources/ontology/DCM/"
MODALITIES = ["CT", "MR", "CR", "DX", "US", "PT", "MG", "NM", "XA", "RF", "OT", "SM"]
VENDORS = [
    "SIEMENS",
    "GE MEDICAL SYSTEMS",
    "Philips",
    "Canon",
    "FUJIFILM",
    "Agfa",
    "Hologic",
    "Carestream",
    "Samsung",
    "United Imaging",
    "Esaote",
    "Mindray",
]
DISEASES = [
    ("C34.1", "Malignant neoplasm of upper lobe, bronchus or lung"),
    ("C50.9", "Malignant neoplasm of breast, unspecified"),
    ("J44.9", "Chronic obstructive pulmonary disease, unspecified"),
    ("C61", "Malignant neoplasm of prostate"),
    ("I63.9", "Cerebral infarction, unspecified"),
    ("C34.9", "Malignant neoplasm of bronchus or lung, unspecified"),
    ("U07.1", "COVID-19, virus identified"),
    ("G30.9", "Alzheimer disease, unspecified"),
    ("C18.7", "Malignant neoplasm of sigmoid colon"),
    ("I21.9", "Acute myocardial infarction, unspecified"),
    ("C71.9", "Malignant neoplasm of brain, unspecified"),
    ("M17.1", "Other primary gonarthrosis"),
    ("J18.9", "Pneumonia, unspecified"),
    ("C22.0", "Liver cell carcinoma"),
    ("S72.0", "Fracture of neck of femur"),
]
ANNOTATIONS = ["Segmentation", "BoundingBox", "Label", "Landmark", "Report"]
GRU, HMB, DS, NMDS = "DUO:0000042", "DUO:0000006", "DUO:0000007", "DUO:0000015"
HEALTH = "http://healthdataportal.eu/ns/health#"
ODRL = "http://www.w3.org/ns/odrl/2/"
OBO = "http://purl.obolibrary.org/obo/"
FACETS = ("modality", "body_part", "manufacturer", "station")
GQL = """query ($f: CollectionFilter) { search(filter: $f, first: 20) {
  totalCount nodes { id subjects }
  facets { modality { value count } body_part: bodyPart { value count }
           manufacturer { value count } station { value count } } } }"""


def _zipf(rng: random.Random, values: list[str], count: int) -> list[str]:
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(values))]
    return sorted(set(rng.choices(values, weights=weights, k=count)))


def _body_parts() -> dict[str, str]:
    graph = rdflib.Graph().parse(CODE_LISTS[1])
    notation = rdflib.URIRef("http://www.w3.org/2004/02/skos/core#notation")
    found = {str(value): str(concept) for concept, value in graph.subject_objects(notation)}
    common = ["CHEST", "HEAD", "ABDOMEN", "PELVIS", "KNEE", "NECK", "BREAST", "HEART", "LIVER", "HAND"]
    return {name: found[name] for name in common if name in found} | dict(sorted(found.items())[:20])


def generate(stations: int, per_station: int, seed: int) -> str:
    """N-Quads of every collection, one named graph each, as the hub stores them."""
    return "".join(generate_blocks(stations, per_station, seed))


def write_quads(path: Path, stations: int, per_station: int, seed: int) -> None:
    """Write :func:`generate`'s N-Quads to ``path`` a station at a time (3 million quads never sit in memory)."""
    with path.open("w", encoding="utf-8") as out:
        out.writelines(generate_blocks(stations, per_station, seed))


def generate_blocks(stations: int, per_station: int, seed: int) -> Iterator[str]:
    """The N-Quads of each station's collections, one block per station."""
    rng = random.Random(seed)
    parts = _body_parts()
    names = list(parts)
    lines: list[str] = []
    integer = "<http://www.w3.org/2001/XMLSchema#integer>"
    age_type = "<http://www.w3.org/2001/XMLSchema#nonNegativeInteger>"
    disease_codes = [code for code, _ in DISEASES]
    disease_label = dict(DISEASES)
    for s in range(stations):
        station = f"st-{s:04d}"
        for c in range(per_station):
            iri = f"<http://hub.bench/dataset/{station}/c{c:03d}>"
            modalities = _zipf(rng, MODALITIES, rng.randint(1, 3))
            regions = _zipf(rng, names, rng.randint(1, 2))
            vendors = _zipf(rng, VENDORS, rng.randint(1, 2))
            subjects = int(rng.lognormvariate(4.0, 1.2)) + 5

            def quad(predicate: str, value: str, iri: str = iri) -> None:
                lines.append(f"{iri} {predicate} {value} {iri} .")

            quad("<http://www.w3.org/1999/02/22-rdf-syntax-ns#type>", "<http://www.w3.org/ns/dcat#Dataset>")
            quad(
                "<http://purl.org/dc/terms/title>",
                json.dumps(f"Collection {c} {' '.join(modalities)} {' '.join(regions)}"),
            )
            quad("<http://purl.org/dc/terms/description>", json.dumps(f"Imaging at {station}"))
            quad(f"<{TY}station>", json.dumps(station))
            if rng.random() > 0.05:  # some counts are suppressed at their station
                quad(f"<{TY}numberOfSubjects>", f'"{subjects}"^^{integer}')
            quad(f"<{TY}numberOfSeries>", f'"{subjects * 3}"^^{integer}')
            quad(f"<{TY}numberOfStudies>", f'"{subjects + subjects // 3}"^^{integer}')
            quad(f"<{TY}numberOfInstances>", f'"{subjects * 240}"^^{integer}')
            quad("<http://purl.org/dc/terms/identifier>", json.dumps(iri[1:-1]))
            quad("<http://purl.org/dc/terms/issued>", f'"2026-{1 + c % 12:02d}-{1 + s % 28:02d}T00:00:00Z"')
            quad(
                "<http://www.w3.org/ns/dcat#theme>",
                "<http://publications.europa.eu/resource/authority/data-theme/HEAL>",
            )
            if rng.random() > 0.1:
                youngest = rng.randint(0, 60)
                quad(f"<{HEALTH}minTypicalAge>", f'"{youngest}"^^{age_type}')
                quad(f"<{HEALTH}maxTypicalAge>", f'"{min(100, youngest + rng.randint(5, 40))}"^^{age_type}')
            for keyword in rng.sample(["screening", "oncology", "follow-up", "research", "trial", "registry"], 2):
                quad("<http://www.w3.org/ns/dcat#keyword>", json.dumps(keyword))
            if rng.random() < 0.7:
                for code in _zipf(rng, disease_codes, rng.randint(1, 2)):
                    node = f"<{iri[1:-1]}#disease-ICD-10-{code}>"
                    quad(f"<{HEALTH}hasCodingSystem>", "<http://id.who.int/icd/release/10/>")
                    quad(f"<{HEALTH}hasCodeValues>", node)
                    lines.append(f"{node} <{TY}diseaseCode> <http://id.who.int/icd/release/10/{code}> {iri} .")
                    lines.append(f'{node} <{TY}codingSystem> "ICD-10" {iri} .')
                    lines.append(f"{node} <{TY}notation> {json.dumps(code)} {iri} .")
                    lines.append(f"{node} <{TY}label> {json.dumps(disease_label[code])} {iri} .")
            draw = rng.random()
            conditions = [GRU] if draw < 0.3 else [HMB] if draw < 0.75 else [DS] if draw < 0.95 else []
            if conditions and rng.random() < 0.15:
                conditions.append(NMDS)
            if conditions:
                policy, permission = f"<{iri[1:-1]}#policy>", f"<{iri[1:-1]}#permission>"
                quad(f"<{ODRL}hasPolicy>", policy)
                lines.append(f"{policy} <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <{ODRL}Offer> {iri} .")
                lines.append(f"{policy} <{ODRL}permission> {permission} {iri} .")
                lines.append(f"{permission} <{ODRL}action> <{ODRL}use> {iri} .")
                for condition in conditions:
                    constraint = f"<{iri[1:-1]}#constraint-{condition.replace(':', '-')}>"
                    lines.append(f"{permission} <{ODRL}constraint> {constraint} {iri} .")
                    lines.append(f"{constraint} <{ODRL}leftOperand> <{ODRL}purpose> {iri} .")
                    lines.append(f"{constraint} <{ODRL}operator> <{ODRL}eq> {iri} .")
                    lines.append(f"{constraint} <{ODRL}rightOperand> <{OBO}{condition.replace(':', '_')}> {iri} .")
            if rng.random() < 0.4:
                for annotation in _zipf(rng, ANNOTATIONS, rng.randint(1, 2)):
                    quad(f"<{TY}annotationType>", f"<{TY}{annotation}>")
            for modality in modalities:
                quad(f"<{TY}modality>", f"<{DCM}{modality}>")
            for region in regions:
                quad(f"<{TY}bodyPart>", f"<{parts[region]}>")
            for vendor in vendors:
                quad(f"<{TY}manufacturer>", json.dumps(vendor))
        yield "\n".join(lines) + "\n"
        lines.clear()


def query_mix(count: int, seed: int, stations: int) -> list[SearchQuery]:
    """A fixed mix of 1-3 filters."""
    rng = random.Random(seed)
    parts = list(_body_parts())
    mix = []
    filters = ["modality", "body_part", "manufacturer", "station", "min_subjects", "disease", "age", "annotation"]
    filters += ["purpose"]
    for _ in range(count):
        chosen = rng.sample(filters, rng.randint(1, 3))
        fields: dict[str, Any] = {}
        if "disease" in chosen:  # an ICD-10 category (C34 finds C34.1 and C34.9) or an exact code
            fields["disease"] = (rng.choice(["C34", "C50.9", "J44.9", "C61", "I63", "G30.9"]),)
        if "age" in chosen:
            low = rng.choice([0, 18, 40, 65])
            fields["min_age"], fields["max_age"] = low, low + rng.choice([10, 20, 40])
        if "annotation" in chosen:
            fields["annotation"] = (rng.choice(ANNOTATIONS[:3]),)
        if "purpose" in chosen:
            fields["purpose"] = HMB
        if "modality" in chosen:
            fields["modality"] = tuple(_zipf(rng, MODALITIES, rng.randint(1, 2)))
        if "body_part" in chosen:
            fields["body_part"] = (rng.choice(parts[:8]),)
        if "manufacturer" in chosen:
            fields["manufacturer"] = (rng.choice(VENDORS[:6]),)
        if "station" in chosen:
            fields["station"] = (f"st-{rng.randrange(stations):04d}",)
        if "min_subjects" in chosen:
            fields["min_subjects"] = rng.choice([20, 50, 100, 500])
        mix.append(SearchQuery(**fields))
    return mix


def _gql_filter(query: SearchQuery) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for facet, key in (
        ("modality", "modality"),
        ("body_part", "bodyPart"),
        ("manufacturer", "manufacturer"),
        ("station", "station"),
    ):
        if getattr(query, facet):
            out[key] = list(getattr(query, facet))
    if query.min_subjects is not None:
        out["minSubjects"] = query.min_subjects
    for facet, key in (("disease", "disease"), ("annotation", "annotation")):
        if getattr(query, facet):
            out[key] = list(getattr(query, facet))
    if query.min_age is not None:
        out["minAge"], out["maxAge"] = query.min_age, query.max_age
    if query.purpose:
        out["purpose"] = query.purpose
    return out


def _sparql_conditions(query: SearchQuery, parts: dict[str, str], skip: str | None = None) -> str:
    clauses = []
    if query.min_subjects is not None:  # thresholds are multiples of GUEST_STEP: the same for guests
        clauses.append(f"?d <{TY}numberOfSubjects> ?n . FILTER (?n >= {query.min_subjects})")
    # Joins, not FILTER EXISTS: the rows a join repeats are merged by the page's GROUP BY and the
    # facets' COUNT(DISTINCT ?d), and Oxigraph evaluates FILTER EXISTS about 100x slower (1.3 s
    # against 10 ms for one disease at 2,000 collections), which is no fair comparison.
    for wanted in query.disease[:1]:  # the index's matching: SYSTEM:CODE, bare code, or ICD-10 category
        clauses.append(
            f"?d <{HEALTH}hasCodeValues> ?c_f . ?c_f <{TY}codingSystem> ?sy_f ; <{TY}notation> ?no_f ."
            f' FILTER (UCASE(?no_f) = "{wanted}" || UCASE(CONCAT(?sy_f, ":", ?no_f)) = "{wanted}"'
            f' || (?sy_f = "ICD-10" && STRBEFORE(UCASE(?no_f), ".") = "{wanted}"))'
        )
    if query.min_age is not None:
        clauses.append(
            f"?d <{HEALTH}minTypicalAge> ?lo_f ; <{HEALTH}maxTypicalAge> ?hi_f ."
            f" FILTER (?hi_f >= {query.min_age} && ?lo_f <= {query.max_age})"
        )
    for annotation in query.annotation[:1]:
        clauses.append(f"?d <{TY}annotationType> <{TY}{annotation}> .")
    if query.purpose == HMB:  # HMB research: permitted by a GRU or an HMB condition
        operand = f"<{ODRL}hasPolicy>/<{ODRL}permission>/<{ODRL}constraint>/<{ODRL}rightOperand>"
        clauses.append(f"?d {operand} ?u_f . FILTER (?u_f IN (<{OBO}DUO_0000042>, <{OBO}DUO_0000006>))")
    for facet in FACETS:
        values = getattr(query, facet)
        if not values or facet == skip:
            continue
        if facet == "modality":
            terms = ", ".join(f"<{DCM}{value}>" for value in values)
            clauses.append(f"?d <{TY}modality> ?m_f . FILTER (?m_f IN ({terms}))")
        elif facet == "body_part":
            terms = ", ".join(f"<{parts[value]}>" for value in values)
            clauses.append(f"?d <{TY}bodyPart> ?b_f . FILTER (?b_f IN ({terms}))")
        elif facet == "manufacturer":
            terms = ", ".join(json.dumps(value) for value in values)
            clauses.append(f"?d <{TY}manufacturer> ?v_f . FILTER (?v_f IN ({terms}))")
        else:
            terms = ", ".join(json.dumps(value) for value in values)
            clauses.append(f"?d <{TY}station> ?s_f . FILTER (?s_f IN ({terms}))")
    return "\n".join(clauses)


def sparql_page(
    store: Any, query: SearchQuery, parts: dict[str, str], *, rdflib_store: bool = False, guest: bool = False
) -> list[str]:
    """The first page of 20 ids, most subjects first (ties by IRI); ``guest`` sorts on the rounded counts
    a guest is shown, as the index does for guests."""
    base = f"?d a <http://www.w3.org/ns/dcat#Dataset> .\n{_sparql_conditions(query, parts)}"
    key = f"FLOOR(?subjects / {GUEST_STEP}) * {GUEST_STEP}" if guest else "?subjects"
    page_query = (
        f"SELECT ?d (SAMPLE(?s) AS ?subjects) WHERE {{ {base} OPTIONAL {{ ?d <{TY}numberOfSubjects> ?s }} }} "
        f"GROUP BY ?d ORDER BY DESC(COALESCE({key}, -1)) ?d LIMIT 20"
    )
    rows = _run(store, page_query, rdflib_store)
    return ["/".join(str(row[0]).rsplit("/", 2)[-2:]) for row in rows]


def sparql_search(
    store: Any, query: SearchQuery, parts: dict[str, str], *, rdflib_store: bool = False
) -> dict[str, Any]:
    """The same faceted search as SPARQL: a page and four facet counts (5 queries)."""
    notation = {iri: name for name, iri in parts.items()}
    ids = sparql_page(store, query, parts, rdflib_store=rdflib_store)
    facets: dict[str, dict[str, int]] = {}
    predicates = {"modality": "modality", "body_part": "bodyPart", "manufacturer": "manufacturer", "station": "station"}
    for facet, predicate in predicates.items():
        conditions = _sparql_conditions(query, parts, skip=facet)
        where = f"?d a <http://www.w3.org/ns/dcat#Dataset> .\n{conditions}\n?d <{TY}{predicate}> ?value ."
        counted = _run(
            store, f"SELECT ?value (COUNT(DISTINCT ?d) AS ?n) WHERE {{ {where} }} GROUP BY ?value", rdflib_store
        )
        values: dict[str, int] = {}
        for value, count in counted:
            text = str(value)
            text = text.removeprefix(DCM) if facet == "modality" else notation.get(text, text)
            values[text] = int(str(count))
        facets[facet] = values
    return {"ids": ids, "facets": facets}


def _run(store: Any, text: str, rdflib_store: bool) -> list[tuple[Any, Any]]:
    if rdflib_store:
        return [(row[0], row[1]) for row in store.query(text)]
    answer = store.query(text, use_default_graph_as_union=True)
    names = [variable.value for variable in answer.variables]
    return [
        (
            solution[names[0]].value if solution[names[0]] is not None else None,
            solution[names[1]].value if solution[names[1]] is not None else None,
        )
        for solution in answer
    ]


FACET_LIMIT = 50


def _top(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer with each facet cut to its top values, as the index reports them."""
    facets = {
        facet: dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:FACET_LIMIT])
        for facet, counts in answer["facets"].items()
    }
    return {"ids": answer["ids"], "facets": facets}


def _difference(found: dict[str, Any], expected: dict[str, Any]) -> str:
    if found["ids"] != expected["ids"]:
        return f"page ids differ: {found['ids'][:3]} vs {expected['ids'][:3]}"
    for facet in FACETS:
        if found["facets"][facet] != expected["facets"][facet]:
            ours, theirs = list(found["facets"][facet].items())[:3], list(expected["facets"][facet].items())[:3]
            return f"facet {facet} differs: {ours} vs {theirs}"
    return ""


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _rss_now_mb() -> float:
    """This process's resident memory now (the peak includes Oxigraph's bulk loader)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _phase(name: str, started: float) -> float:
    """Print how long a phase took (to stderr) and return now."""
    now = time.perf_counter()
    print(f"[bench.catalog] {name}: {now - started:.1f} s", file=sys.stderr, flush=True)
    return now


def _member_headers(app: Any, http: httpx.Client, username: str, role: Role) -> dict[str, str]:
    """A user made in the hub's database, logged in over HTTP: their bearer-token headers."""
    with Session(app.state.engine) as session:
        crud.create_user(session=session, user_create=UserCreate(username=username, password=PASSWORD, role=role))
    answer = http.post("/auth/login", json={"username": username, "password": PASSWORD})
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _search(http: httpx.Client, query: SearchQuery, headers: dict[str, str]) -> dict[str, Any]:
    body = {"query": GQL, "variables": {"f": _gql_filter(query)}}
    answer = http.post("/graphql", json=body, headers=headers)
    answer.raise_for_status()
    data = answer.json()["data"]["search"]
    return {
        "ids": [node["id"] for node in data["nodes"]],
        "facets": {facet: {v["value"]: v["count"] for v in data["facets"][facet]} for facet in FACETS},
    }


def _visible_s(http: httpx.Client, headers: dict[str, str], publish: Any, token: str) -> float:
    """Seconds from sending a publication to a GraphQL search over HTTP finding it by ``token``."""
    began = time.perf_counter()
    publish()
    while True:
        answer = http.post("/graphql", json={"query": GQL, "variables": {"f": {"text": token}}}, headers=headers).json()
        if answer["data"]["search"]["totalCount"]:
            return time.perf_counter() - began
        if time.perf_counter() - began > 60:
            raise RuntimeError(f"a publication was not searchable within 60 s: {answer}")
        time.sleep(0.005)


def publication_times(app: Any, http: httpx.Client, base: str, member: dict[str, str]) -> tuple[float, float]:
    """A real station publication: enrolment over HTTP, a signed PUT (the hub checks the signatures,
    validates the record with SHACL and replaces its named graph), then searches over HTTP until it is
    found. Returns the seconds until a new collection, then its republication, is searchable."""
    from station.agent import hub_client  # the station's own client signs every request
    from station.catalog import build_publication
    from station.state import StationIdentity

    admin = _member_headers(app, http, "bench-admin", Role.ADMIN)
    name = "st-0000"  # a station the catalog already lists: the new collection is appended to the index
    answer = http.post("/stations/enrolment-tokens", json={"station": name}, headers=admin)
    answer.raise_for_status()
    keys = generate_key_pair()
    enrolment = {
        "name": name,
        "enrolment_token": answer.json()["token"],
        "signing_public_key": keys.signing_public,
        "encryption_public_key": keys.encryption_public,
    }
    enrolled = http.post("/stations/enrol", json=enrolment)
    enrolled.raise_for_status()
    identity = StationIdentity(
        name=name, hub_url=base, station_id=enrolled.json()["station_id"], api_token=enrolled.json()["api_token"]
    )
    summary = CollectionSummary(
        k=5,
        subjects=40,
        studies=52,
        series=120,
        instances=9600,
        modalities={"CT": 40},
        body_parts={"CHEST": 40},
        manufacturers={"SIEMENS": 40},
    )
    with hub_client(identity, keys) as station:

        def put(title: str) -> None:
            publication = build_publication(
                station=name, collection="probe", title=title, description="A probe", summary=summary, keys=keys
            )
            answer = station.put("/stations/me/collections/probe", json=publication.model_dump(mode="json"))
            answer.raise_for_status()

        new_s = _visible_s(http, member, lambda: put("brand new collection zzzfresh"), "zzzfresh")
        again_s = _visible_s(http, member, lambda: put("republished collection zzzagain"), "zzzagain")
    return new_s, again_s


def main() -> None:
    """Generate, load, measure, compare; write ``bench/results/catalog.json``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collections", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--sparql-queries", type=int, default=20)
    parser.add_argument("--rdflib-collections", type=int, default=5_000)
    parser.add_argument("--rdflib-queries", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    options = parser.parse_args()
    per_station = 100
    stations = max(1, options.collections // per_station)
    parts = _body_parts()
    mix = query_mix(options.queries, 7, stations)
    with tempfile.TemporaryDirectory(prefix="trainyard-bench-catalog-") as workdir:
        settings = Settings(state_dir=Path(workdir) / "hub", base_iri="http://hub.bench")
        source = Path(workdir) / "federation.nq"
        clock = time.perf_counter()
        write_quads(source, stations, per_station, 1)
        clock = _phase("generate", clock)
        settings.catalog_dir.mkdir(parents=True)
        store = ox.Store(str(settings.catalog_dir))
        store.bulk_load(path=source, format=ox.RdfFormat.N_QUADS)
        store.flush()
        load_s = time.perf_counter() - clock
        triples = len(store)
        del store
        source.unlink()
        clock = _phase(f"bulk load ({triples} quads)", clock)
        CatalogStore(settings.catalog_dir).close()  # makes the guests' view once, as a first start would
        guest_view_s = time.perf_counter() - clock
        clock = _phase("guests' view made from the store", clock)
        rss_before_app = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        app = create_app(settings)
        with serve_on_loopback(app) as base, httpx.Client(base_url=base, timeout=60) as http:
            index_build_s = time.perf_counter() - clock  # start-up: the index is built from the store
            clock = _phase("hub start-up (index built from the store)", clock)
            member = _member_headers(app, http, "bench-researcher", Role.RESEARCHER)
            for query in mix[:5]:  # warm-up, not counted
                _search(http, query, member)
            latencies, answers = [], []
            for query in mix:
                began = time.perf_counter()
                answers.append(_search(http, query, member))
                latencies.append((time.perf_counter() - began) * 1000)
            rss_serving = _rss_now_mb()  # the hub with its store and index, serving
            guest_pages = [_search(http, query, {})["ids"] for query in mix[: options.sparql_queries]]
            clock = _phase(f"GraphQL mix ({len(mix)} queries)", clock)
            oxigraph_ms, equal, guest_equal, mismatch = [], 0, 0, ""
            catalog_store = app.state.catalog.store
            compared = mix[: options.sparql_queries]
            for query, expected, guest_page in zip(compared, answers, guest_pages, strict=False):
                began = time.perf_counter()
                found = _top(sparql_search(catalog_store, query, parts))
                oxigraph_ms.append((time.perf_counter() - began) * 1000)
                equal += found == expected
                mismatch = mismatch or _difference(found, expected)
                guest_equal += sparql_page(catalog_store, query, parts, guest=True) == guest_page
            clock = _phase(f"SPARQL on Oxigraph ({len(oxigraph_ms)} searches)", clock)
            # after the comparisons, which would otherwise see one collection more than the mix did
            publish_new_visible_s, publish_visible_s = publication_times(app, http, base, member)
            clock = _phase("publications", clock)
        rdflib_ms: list[float] = []
        rdflib_equal = 0
        small_stations = max(1, options.rdflib_collections // per_station)
        small = generate(small_stations, per_station, 1)
        graph = rdflib.Dataset(default_union=True)
        graph.parse(data=small, format="nquads")
        small_store = ox.Store()  # the same data, in an index, to compare
        small_store.bulk_load(small.encode(), format=ox.RdfFormat.N_QUADS)
        small_index = SearchIndex(records_from_store(small_store))
        clock = _phase(f"rdflib load ({small_stations * per_station} collections)", clock)
        small_mix = query_mix(options.rdflib_queries, 11, small_stations)
        for query in small_mix:
            began = time.perf_counter()
            found = _top(sparql_search(graph, query, parts, rdflib_store=True))
            rdflib_ms.append((time.perf_counter() - began) * 1000)
            result = small_index.search(query)
            expected = {"ids": [r.id for r in result.records], "facets": {f: dict(result.facets[f]) for f in FACETS}}
            rdflib_equal += found == expected
        _phase(f"SPARQL on rdflib ({len(rdflib_ms)} searches)", clock)
    faceted_p50 = statistics.median(latencies)
    oxigraph_p50 = statistics.median(oxigraph_ms)
    figures = {
        "collections": stations * per_station,
        "triples": triples,
        "load_s": round(load_s, 1),
        "guest_view_build_s": round(guest_view_s, 1),
        "index_build_s": round(index_build_s, 1),
        "faceted_queries": len(latencies),
        "faceted_p50_ms": round(faceted_p50, 2),
        "faceted_p99_ms": round(_percentile(latencies, 0.99), 2),
        "oxigraph_queries": len(oxigraph_ms),
        "oxigraph_p50_ms": round(oxigraph_p50, 1),
        "oxigraph_p99_ms": round(_percentile(oxigraph_ms, 0.99), 1),
        "oxigraph_equal_answers": f"{equal}/{len(oxigraph_ms)}",
        "oxigraph_equal_guest_pages": f"{guest_equal}/{len(oxigraph_ms)}",
        "first_difference": mismatch,
        "rdflib_collections": small_stations * per_station,
        "rdflib_p50_ms": round(statistics.median(rdflib_ms), 1),
        "rdflib_equal_answers": f"{rdflib_equal}/{len(rdflib_ms)}",
        "speedup_vs_oxigraph": round(oxigraph_p50 / faceted_p50, 1),
        "publish_visible_s": round(publish_visible_s, 3),
        "publish_new_visible_s": round(publish_new_visible_s, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_app_mb": round(rss_before_app, 1),
        "rss_serving_mb": round(rss_serving, 1),
        "command": f"python -m bench.catalog.run --collections {options.collections}",
    }
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
