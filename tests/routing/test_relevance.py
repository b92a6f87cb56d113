"""The relevance model behind CONTENT_MATCH routing: plain objects, no database."""

from routing.relevance import AgentProfile, RelevanceModel

TRANSLATOR = AgentProfile(
    key=1,
    name="translator",
    role="Translator",
    description="Translates text between languages and localises product copy.",
    expertise=("translation", "localization", "french", "spanish"),
    examples=("Translate this paragraph into French",),
)
SQL = AgentProfile(
    key=2,
    name="sql-analyst",
    role="SQL data analyst",
    description="Writes database queries against the warehouse and answers questions with numbers from tables.",
    expertise=("sql", "postgresql", "query optimization", "joins"),
    examples=("Write a query that returns monthly active users",),
)
VISUALISER = AgentProfile(
    key=3,
    name="data-visualiser",
    role="Data visualiser",
    description="Turns datasets into charts and dashboards.",
    expertise=("data visualization", "charts", "dashboards"),
    examples=("Make a bar chart of signups per month",),
)
AGENTS = [TRANSLATOR, SQL, VISUALISER]


def substring_pick(query: str, profiles: list[AgentProfile]) -> int | str | None:
    """The seed's content match: tags and role words found as substrings; None where nothing is found at all."""
    counts = [sum(word in query.lower() for word in [*p.expertise, *p.role.lower().split()]) for p in profiles]
    return profiles[counts.index(max(counts))].key if max(counts) else None


def test_a_paraphrase_reaches_the_right_agent_where_substring_matching_finds_nothing():
    query = "Please translate these release notes for our customers in Madrid"
    assert substring_pick(query, AGENTS) is None

    best = RelevanceModel(AGENTS).best(query)

    assert best is not None and best.key == TRANSLATOR.key
    assert "translate" in best.matched


def test_word_forms_and_british_spellings_meet():
    assert RelevanceModel(AGENTS).best("visualise our signups, then chart them").key == VISUALISER.key


def test_a_misspelt_tag_still_matches():
    assert RelevanceModel(AGENTS).best("make a dashbord for the weekly numbers").key == VISUALISER.key


def test_a_query_unlike_every_agent_gets_nothing_fits():
    model = RelevanceModel(AGENTS)

    assert model.best("How long should I boil an egg for a runny yolk?") is None
    assert all(r.score == 0 for r in model.rank("Who painted the Mona Lisa?"))


def test_terms_every_agent_shares_do_not_decide():
    shared = ("reports", "customers")
    agents = [
        AgentProfile(1, "a", expertise=(*shared, "invoices")),
        AgentProfile(2, "b", expertise=(*shared, "payroll")),
        AgentProfile(3, "c", expertise=(*shared, "inventory")),
    ]
    model = RelevanceModel(agents)

    assert model.best("reports for customers") is None
    assert model.best("payroll reports for customers").key == 2
    ranking = model.rank("payroll reports for customers")
    assert ranking[0].matched[0] == "payroll"


def test_history_shifts_an_ambiguous_query_toward_the_agent_that_did_similar_tasks():
    query = "how many orders did each region get last week"
    reviewer = AgentProfile(4, "reporter", role="Reporting assistant", expertise=("reports",))
    before = RelevanceModel([SQL, reviewer, VISUALISER]).rank(query)
    with_history = AgentProfile(
        4,
        "reporter",
        role="Reporting assistant",
        expertise=("reports",),
        history=("orders per region last month", "weekly orders by region", "region totals for orders"),
    )
    after = RelevanceModel([SQL, with_history, VISUALISER]).rank(query)

    assert before[0].key != 4
    assert after[0].key == 4
    assert after[0].score > next(r.score for r in before if r.key == 4)


def test_history_counts_less_than_the_operators_own_examples():
    from_example = AgentProfile(1, "a", examples=("reconcile the ledger",))
    from_history = AgentProfile(2, "b", history=("reconcile the ledger",))
    ranking = RelevanceModel([from_history, from_example]).rank("reconcile the ledger")

    assert [r.key for r in ranking] == [1, 2]
    assert ranking[1].score > 0


def test_a_shared_phrase_counts_more_than_the_same_words_apart():
    phrase = AgentProfile(1, "reviewer", expertise=("code review",))
    apart = AgentProfile(2, "other", description="Reviews drafts; writes code samples.")

    assert RelevanceModel([apart, phrase]).best("do a code review of my branch").key == 1


def test_ranking_is_deterministic_and_ties_keep_the_given_order():
    twins = [AgentProfile("b", "b", expertise=("invoices",)), AgentProfile("a", "a", expertise=("invoices",))]
    first = RelevanceModel(twins).rank("check these invoices")

    assert [r.key for r in first] == ["b", "a"]
    assert first[0].score == first[1].score
    for _ in range(3):
        assert RelevanceModel(twins).rank("check these invoices") == first


def test_rank_lists_every_agent_best_first():
    ranking = RelevanceModel(AGENTS).rank("write a sql query joining two tables")

    assert [r.key for r in ranking][0] == SQL.key
    assert sorted(r.key for r in ranking) == [1, 2, 3]
    assert [r.score for r in ranking] == sorted((r.score for r in ranking), reverse=True)


def test_an_empty_query_fits_nothing():
    model = RelevanceModel(AGENTS)

    assert model.best("") is None
    assert model.best("  the of and ?! ") is None
    assert [r.score for r in model.rank("")] == [0, 0, 0]


def test_no_agents_means_nothing_fits():
    model = RelevanceModel([])

    assert model.rank("translate this") == []
    assert model.best("translate this") is None


def test_a_single_agent_still_gets_a_matching_query_and_refuses_an_unrelated_one():
    model = RelevanceModel([TRANSLATOR])

    assert model.best("translate this into spanish").key == TRANSLATOR.key
    assert model.best("fix my bicycle brakes") is None


def test_non_english_text_is_analysed():
    german = AgentProfile(1, "de", expertise=("übersetzung", "straße"))

    assert RelevanceModel([german, SQL]).best("Übersetzung für die Straße").key == 1


def test_min_score_can_be_raised_to_demand_stronger_evidence():
    query = "turn the datasets into something"

    assert RelevanceModel(AGENTS).best(query) is not None
    assert RelevanceModel(AGENTS, min_score=5.0).best(query) is None
