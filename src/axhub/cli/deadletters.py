"""``axhub deadletters``: what was refused, with reasons, per source (connections and files)."""

from __future__ import annotations

import typer

from axhub.cli._context import console, friendly_errors, open_database
from axhub.cli._lang import current_lang, lang_option


def register(app: typer.Typer) -> None:
    app.command("deadletters")(deadletters)


@friendly_errors
def deadletters(
    source: str | None = typer.Option(
        None, "--source", help="Only this source (a connection or a file name)."
    ),
    limit: int = typer.Option(20, "--limit", help="How many refused items to show."),
    org: str | None = typer.Option(None, "--org"),
    lang: str | None = lang_option(),
) -> None:
    """Refused payloads and file rows, per source, with the reason. / 거부된 데이터와 사유."""
    from rich.table import Table

    from axhub.cli._where import org_scope_id, show_local
    from axhub.core.settings import get_settings
    from axhub.serve import refused
    from axhub.store.scoped import OrgScope

    settings = get_settings()
    db = open_database(settings)
    org_id = org_scope_id(db, org, settings)
    ko = current_lang() == "ko"
    with db.session() as session:
        scope = OrgScope(session, org_id)
        zone = scope.org_timezone()
        summary = refused.summary(settings, scope)
        table = Table(
            "출처" if ko else "source",
            "종류" if ko else "kind",
            "거부 건수" if ko else "refused",
            f"마지막({zone})" if ko else f"last ({zone})",
            title="거부된 데이터" if ko else "Refused data",
        )
        for name, kind, count, last in summary:
            if source is None or name == source:
                kind_text = {"connector": "연결", "file": "파일"}[kind] if ko else kind
                table.add_row(name, kind_text, f"{count:,}", show_local(last, zone))
        console.print(table)
        shown = 0
        for item in refused.file_rejects(scope, source, limit):
            for p in item.problems:
                if shown >= limit:
                    break
                console.print(f"  • {p.render(current_lang())}")
                shown += 1
    for letter in refused.dead_letters(settings, org_id, source):
        if shown >= limit:
            break
        text = letter.payload[:200].decode("utf-8", errors="replace")
        when = show_local(letter.received_at, zone)
        console.print(f"  • {when} {letter.source} {letter.origin}: {letter.reason} — {text}")
        shown += 1
    del lang
