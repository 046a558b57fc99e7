"""The reviewer console at ``/review``: server-rendered pages, a little vanilla JS, no build step.

Pages read through the same service as the JSON API; every action in the page goes through the JSON
API with the session cookie and the CSRF header, so the console has no write path of its own.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import AfterValidator, BaseModel, Field

from moderation.api.accounts import LoginRefused, same_secret
from moderation.api.auth import SESSION_COOKIE, current_actor
from moderation.queue import ItemFilter, QueueError, ReviewQueue
from moderation.queue.roles import ROLE_LABELS, Actor
from moderation.queue.safety import INT_MAX, has_unstorable, refuse_unstorable
from moderation.queue.states import OUTCOME_LABELS, REASON_CODES, reason_for_family
from moderation.rules.masking import CONTACT_FAMILY, mask_contacts, mask_finding, mask_spans
from moderation.schema import CATEGORIES, CATEGORY_LABELS, SEVERITY_LABELS, VERDICT_LABELS

#: No prefix: the console lives under /review, the listing-editor demo at /editor and its client at
#: /static/check.js (for editor teams), all in this one router.
router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).resolve().parent / "static"
Text = Annotated[str, AfterValidator(refuse_unstorable)]
templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))
LOGIN_CSRF_COOKIE = "mlogin_csrf"

STATUS_LABELS = {
    "open": "待处理(全部)",
    "pending": "待领取",
    "claimed": "处理中",
    "escalated": "已升级",
    "decided": "已决定",
    "superseded": "已作废",
}
EVENT_LABELS = {
    "created": "进入队列",
    "signal_attached": "新信号合并",
    "claimed": "领取",
    "assigned": "指派",
    "released": "释放",
    "skipped": "跳过",
    "escalated": "升级",
    "decided": "决定",
    "undone": "撤销",
    "reverted": "组长撤回",
    "superseded": "商品已修改，作废",
    "commented": "评论",
    "priority_changed": "调整优先级",
    "appealed": "商家申诉",
}
FAMILY_LABELS_SHORT = {
    "absolute_claims": "绝对化用语",
    "state_symbols": "国家象征",
    "military_names": "军字号",
    "minors": "未成年人",
    "superstition_vulgarity": "迷信低俗",
    "medical_claims": "医疗功效",
    "health_food": "保健食品",
    "drugs_devices": "药品器械",
    "endorsements": "代言推荐",
    "education": "教育承诺",
    "investment": "投资承诺",
    "real_estate": "房地产",
    "agriculture": "农资",
    "alcohol": "酒类",
    "tobacco": "烟草",
    "false_claims": "虚假宣传",
    "data_without_source": "数据无出处",
    "patents": "专利",
    "disparagement": "贬低他人",
    "price_claims": "价格宣称",
    "fake_sales_reviews": "虚假销量评价",
    "food_labels": "食品标签",
    "cosmetics": "化妆品功效",
    "images": "图片盗用",
}
AGE_OPTIONS = {"": "不限", "1": "超过 1 小时", "4": "超过 4 小时", "24": "超过 24 小时"}
#: Every error a reviewer can meet, in Chinese (by the API's ``code``; the console's JS reads the same
#: table from the page, so there is one source).
ERROR_LABELS = {
    "lease_lost": "你已不再持有此条（领取已过期或被他人接手），请刷新后重新领取",
    "held": "其他审核员正在处理此条",
    "stale_version": "此条刚被修改过，请刷新后再操作",
    "listing_changed": "商品已被商家修改，此条已作废，不能再决定",
    "already_decided": "此条已经决定过了",
    "already_escalated": "此条已经升级过了",
    "not_claimable": "此条现在不能领取",
    "not_open": "此条已不在待处理状态",
    "not_decided": "此条还没有决定，不能撤销",
    "undo_window_passed": "已超过撤销时限，请联系组长撤回",
    "not_your_decision": "只有作出决定的审核员可以撤销，请联系组长",
    "escalated": "已升级的条目只有组长可以领取",
    "appeal_conflict": "原决定人不能审核该申诉",
    "reason_required": "驳回或要求修改需要至少选择一个原因",
    "invalid_reason_code": "原因不在列表中",
    "invalid_outcome": "请选择结论：通过、驳回或要求修改",
    "invalid_cursor": "分页链接已失效，请从第一页重新浏览",
    "invalid_status": "状态筛选无效",
    "invalid_sort": "排序方式无效",
    "invalid_comment": "评论需要 1 到 5000 个字",
    "idempotency_key_reused": "重复提交的内容不一致，请刷新后重试",
    "item_not_found": "没有这个条目",
    "user_not_found": "没有这个用户",
    "user_disabled": "该用户已停用",
    "not_a_reviewer": "该用户不能审核",
    "too_many_items": "一次最多批量处理 500 条",
    "conflict": "此条刚被他人修改，请刷新",
    "contention": "系统繁忙，请重试",
    "saturated": "系统繁忙，请稍后重试",
    "database_unavailable": "数据库暂时不可用，请稍后重试",
    "forbidden": "你的角色不能执行此操作",
    "csrf": "页面已过期，请刷新后重试",
    "unauthenticated": "登录已过期，请重新登录",
    "invalid_input": "提交的内容不完整或格式不对",
    "not_found": "页面不存在",
    "seller_not_found": "没有这个商家的记录",
    "network": "网络连接失败，请检查网络后重试",
}
#: Fallbacks by HTTP status when an answer has no code the table knows.
STATUS_ERRORS = {
    400: "请求无效",
    401: "登录已过期，请重新登录",
    403: "你没有权限执行此操作",
    404: "页面或条目不存在",
    409: "此条状态已变化，请刷新",
    413: "提交的内容太大",
    422: "提交的内容不完整或格式不对",
    429: "操作太频繁，请稍后再试",
    500: "服务器出错了，请稍后重试",
    503: "系统繁忙，请稍后重试",
}


def error_text(code: str | None, status: int) -> str:
    return ERROR_LABELS.get(code or "", "") or STATUS_ERRORS.get(status, f"操作失败（{status}）")


def _pack_family_names() -> dict[str, str]:
    """Chinese family names: the console's short labels, else the rule pack's ``name``."""
    import yaml

    from moderation.paths import rules_dir

    names: dict[str, str] = {}
    for path in sorted((rules_dir() / "packs").glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and data.get("family"):
            names[str(data["family"])] = str(data.get("name") or data["family"])
    return {**names, **FAMILY_LABELS_SHORT, "copied_image": "图片盗用"}


FAMILY_LABELS = _pack_family_names()
#: A Chinese family label typed or picked in a filter → its key.
FAMILY_BY_LABEL = {label: key for key, label in FAMILY_LABELS.items()}


def family_key(value: str | None) -> str | None:
    """A family filter value: a key, a Chinese label, or a unique part of a label (医疗 → medical_claims)."""
    if not value:
        return None
    value = value.strip()
    if value in FAMILY_LABELS or value in FAMILY_BY_LABEL:
        return FAMILY_BY_LABEL.get(value, value)
    partial = [key for key, label in FAMILY_LABELS.items() if value in label]
    return partial[0] if len(partial) == 1 else value


def field_label(name: str) -> str:
    """A finding's field as a reviewer reads it: 标题, 描述, 属性“产地”, 图片 2."""
    if name in ("title", "description"):
        return {"title": "标题", "description": "描述"}[name]
    if name.startswith("attributes."):
        return f"属性“{name.removeprefix('attributes.')}”"
    if name.startswith("image:") and name[6:].isdigit():
        return f"图片 {int(name[6:]) + 1}"
    return name


def human_age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "刚刚"
    if seconds < 3600:
        return f"{seconds // 60} 分钟"
    if seconds < 86400:
        return f"{seconds // 3600} 小时"
    return f"{seconds // 86400} 天"


def sla_state(item: dict[str, Any]) -> str:
    """ok | near | breached, for the badge colour."""
    if item.get("sla_breached"):
        return "breached"
    if item["status"] in ("pending", "claimed", "escalated") and item.get("sla_deadline"):
        left = (datetime.fromisoformat(item["sla_deadline"]) - datetime.now(UTC)).total_seconds()
        total = left + item["age_seconds"]
        if total > 0 and left / total < 0.25:
            return "near"
    return "ok"


def segments(text: str, findings: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Split ``text`` into plain and highlighted runs; overlapping spans keep the first one."""
    out: list[dict[str, Any]] = []
    pos = 0
    for index, f in sorted(findings, key=lambda p: (p[1]["start"], -p[1]["end"])):
        start, end = max(f["start"], pos), min(f["end"], len(text))
        if start >= end:
            continue
        if start > pos:
            out.append({"text": text[pos:start]})
        out.append(
            {
                "text": text[start:end],
                "finding": index,
                "severity": f["severity"],
                "title": f"{f['rule']} · {f['law']}：{f['message']}",
            }
        )
        pos = end
    if pos < len(text):
        out.append({"text": text[pos:]})
    return out


def page_actor(request: Request) -> Actor | None:
    """The session's actor for a page (pages run in the thread pool, so look up synchronously)."""
    sid = request.cookies.get(SESSION_COOKIE)
    info = request.app.state.accounts.session(sid) if sid else None
    if info is None:
        return None
    request.state.csrf_token = info.csrf_token
    return info.actor  # type: ignore[no-any-return]


def render(
    request: Request, name: str, actor: Actor | None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    context.update(
        actor=actor,
        role_label=ROLE_LABELS.get(actor.role, "") if actor else "",
        csrf_token=getattr(request.state, "csrf_token", ""),
        reason_codes=list(REASON_CODES.items()),
        outcome_labels=OUTCOME_LABELS,
        severity_labels=SEVERITY_LABELS,
        status_labels=STATUS_LABELS,
        verdict_labels=VERDICT_LABELS,
        category_labels=CATEGORY_LABELS,
        family_labels=FAMILY_LABELS,
        event_labels=EVENT_LABELS,
        human_age=human_age,
        error_labels={**ERROR_LABELS, **{str(k): v for k, v in STATUS_ERRORS.items()}},
        mask=mask_contacts,
        field_label=field_label,
    )
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def error_page(request: Request, actor: Actor | None, status: int, message: str) -> HTMLResponse:
    """An HTML error page in Chinese (never raw JSON for a person in a browser)."""
    return render(request, "error.html", actor, status_code=status, status=status, message=message)


def _login_redirect(request: Request) -> RedirectResponse:
    target = safe_next(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return RedirectResponse(
        "/review/login" + ("" if target == "/review" else "?" + urlencode({"next": target})), 303
    )


def _item_id(raw: str) -> int | None:
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= INT_MAX else None


def _queue(request: Request) -> ReviewQueue:
    return request.app.state.queue  # type: ignore[no-any-return]


def secure_cookies(request: Request) -> bool:
    """``Secure`` on every cookie when the server says so (``--secure-cookies``: TLS ends at a proxy,
    so the app sees http), else when the request itself came over https."""
    return bool(request.app.state.settings.secure_cookies) or request.url.scheme == "https"


_NEXT = re.compile(r"/(?:editor|review(?:/[A-Za-z0-9_/-]*)?)(?:\?[A-Za-z0-9_=&%.-]*)?")


def safe_next(value: str | None) -> str:
    """Where to go after signing in: only this console's own pages (never another site)."""
    return value if value and len(value) <= 300 and _NEXT.fullmatch(value) else "/review"


def _login_form(
    request: Request,
    error: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    next_url: str = "/review",
) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = render(
        request, "login.html", None, login_csrf=token, error=error, next_url=safe_next(next_url)
    )
    response.status_code = status
    response.headers.update(headers or {})
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        path="/review",
        secure=secure_cookies(request),
    )
    return response


@router.get("/review/login", response_class=HTMLResponse)
def login_page(
    request: Request,
    error: Annotated[str, AfterValidator(lambda v: "" if has_unstorable(v) else v[:200])] = "",
    next_url: Annotated[
        str, Query(alias="next"), AfterValidator(lambda v: "" if has_unstorable(v) else v[:300])
    ] = "",
) -> HTMLResponse:
    return _login_form(request, error, next_url=next_url)


@router.post("/review/login")
def login(
    request: Request,
    username: Annotated[Text, Form(max_length=100)],
    password: Annotated[Text, Form(max_length=200)],
    csrf_token: Annotated[Text, Form(max_length=100)],
    next_url: Annotated[Text, Form(alias="next", max_length=300)] = "/review",
) -> Response:
    """Sign in. Throttled per account and per address: after a few failures each further one locks
    both for twice as long (429 with ``Retry-After``, the password is not checked meanwhile); when
    too many password checks already run, 503 with ``Retry-After``."""
    if not same_secret(csrf_token, request.cookies.get(LOGIN_CSRF_COOKIE)):
        return RedirectResponse(
            "/review/login?" + urlencode({"error": "页面已过期，请重新登录", "next": safe_next(next_url)}),
            303,
        )
    address = request.client.host if request.client else None
    try:
        actor = request.app.state.accounts.authenticate(username.strip(), password, address)
    except LoginRefused as exc:
        text = (
            f"登录失败次数过多，请 {exc.retry_after} 秒后再试"
            if exc.code == "throttled"
            else "同时登录的人太多，请稍后再试"
        )
        return _login_form(request, text, exc.status, {"Retry-After": str(exc.retry_after)}, next_url)
    if actor is None:
        return RedirectResponse(
            "/review/login?" + urlencode({"error": "用户名或密码错误", "next": safe_next(next_url)}), 303
        )
    sid, _ = request.app.state.accounts.create_session(actor)
    response = RedirectResponse(safe_next(next_url), 303)
    response.set_cookie(
        SESSION_COOKIE, sid, httponly=True, samesite="lax", max_age=12 * 3600, secure=secure_cookies(request)
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/review")
    return response


@router.post("/review/logout")
def logout(request: Request, csrf_token: Annotated[Text, Form(max_length=100)] = "") -> Response:
    """A plain form post, so the CSRF token comes as a form field and is checked here."""
    sid = request.cookies.get(SESSION_COOKIE)
    info = request.app.state.accounts.session(sid) if sid else None
    if info is not None:
        if not same_secret(csrf_token, info.csrf_token):
            raise HTTPException(403, "missing or wrong CSRF token")
        request.app.state.accounts.end_session(sid)
    response = RedirectResponse("/review/login", 303)
    response.delete_cookie(SESSION_COOKIE)
    return response


def _filters(request: Request) -> tuple[ItemFilter, dict[str, str]]:
    """The queue page's filters from its query string; values no database could compare (NUL,
    unpaired surrogates, over-long) are dropped, and an age outside 0–1,000,000 hours is ignored.
    The family may be given by its Chinese label; ``q`` searches title, listing id and seller, in every
    state unless ``status`` is given (``all`` = every state)."""
    params = {
        k: v.strip()
        for k, v in request.query_params.items()
        if v and v.strip() and k != "cursor" and len(v) <= 200 and not has_unstorable(v)
    }
    age = params.get("age", "")
    try:
        min_age = float(age) if age else None
    except ValueError:
        min_age = None
    if min_age is not None and not 0 <= min_age <= 1_000_000:  # also NaN and inf
        min_age = None
    if params.get("family"):
        params["family"] = family_key(params["family"]) or ""
    extra: dict[str, Any] = {}
    if params.get("q") and "q" in getattr(ItemFilter, "__dataclass_fields__", {}):
        extra["q"] = params["q"]
    # A search looks in every state unless a state is chosen: a listing id decided last week is still found.
    status = params.get("status") or ("all" if params.get("q") else "open")
    f = ItemFilter(
        status=None if status == "all" else status,
        family=params.get("family") or None,
        severity=params.get("severity"),
        category=params.get("category"),
        seller=params.get("seller"),
        min_age_hours=min_age,
        sort=params.get("sort", "priority"),
        **extra,
    )
    return f, params


@router.get("/review", response_class=HTMLResponse)
def queue_page(request: Request) -> Response:
    actor = page_actor(request)
    if actor is None:
        return _login_redirect(request)
    f, params = _filters(request)
    cursor = request.query_params.get("cursor")
    error = notice = ""
    try:
        if cursor is not None and (len(cursor) > 500 or has_unstorable(cursor)):
            raise QueueError("invalid_cursor", "the cursor is not one this API returned")
        page = _queue(request).views.list_items(f, limit=50, cursor=cursor)
        if not page["items"] and getattr(f, "q", None) and f.status == "open" and cursor is None:
            # Nothing open matches the search: show what matches in any state (a decided listing).
            f, params = replace(f, status=None), {**params, "status": "all"}
            page = _queue(request).views.list_items(f, limit=50)
            notice = f"待处理条目中没有“{f.q}”，下面是全部状态中的结果"
    except QueueError as exc:
        page, error = {"items": [], "next_cursor": None}, error_text(exc.code, exc.status)
    for item in page["items"]:
        item["sla_state"] = sla_state(item)
        item["title"] = mask_contacts(item.get("title") or "")
    next_url = None
    if page["next_cursor"]:
        next_url = "/review?" + urlencode({**params, "cursor": page["next_cursor"]})
    return render(
        request,
        "queue.html",
        actor,
        items=page["items"],
        filters=params,
        status=f.status or "all",
        next_url=next_url,
        views=request.app.state.accounts.views(actor.id),
        error=error,
        notice=notice,
        categories=CATEGORIES,
        age_options=AGE_OPTIONS,
        query=urlencode(params),
    )


def _masked_fields(listing: dict[str, Any], findings: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The listing's text fields with contact ids masked (same length, so spans still line up):
    the spans of off-platform findings first, then any other contact id in the text."""
    fields = [
        ("title", "标题", listing.get("title") or ""),
        ("description", "描述", listing.get("description") or ""),
    ]
    fields += [(f"attributes.{k}", k, str(v)) for k, v in (listing.get("attributes") or {}).items()]
    out = []
    for name, label, text in fields:
        spans = [
            (f["start"], f["end"]) for f in findings if f["field"] == name and f["family"] == CONTACT_FAMILY
        ]
        masked = mask_contacts(mask_spans(text, spans) if spans else text)
        out.append((name, label, masked))
    return out


def machine_suggestion(item: dict[str, Any], findings: list[dict[str, Any]]) -> dict[str, Any]:
    """What the machine would decide, offered as a button to copy, never preselected."""
    verdict = item["check"].get("verdict") or item.get("verdict")
    outcome = {"block": "rejected", "review": "changes_requested"}.get(verdict or "", "approved")
    reasons = list(dict.fromkeys(reason_for_family(f["family"]) for f in findings))
    if not reasons and outcome != "approved":
        reasons = ["other"]
    message = "；".join(
        dict.fromkeys(
            f["message"].rstrip("。") + (f"。建议：{f['suggestion']}" if f.get("suggestion") else "")
            for f in findings
        )
    )[:1900]
    return {"verdict": verdict, "outcome": outcome, "reasons": reasons, "message": message}


@router.get("/review/items/{item_id}", response_class=HTMLResponse)
def item_page(item_id: str, request: Request) -> Response:
    actor = page_actor(request)
    if actor is None:
        return _login_redirect(request)
    number = _item_id(item_id)
    if number is None:
        return error_page(request, actor, 404, f"没有编号为 {item_id[:40]} 的条目")
    try:
        item = _queue(request).views.detail(number, actor)
    except QueueError as exc:
        return error_page(request, actor, exc.status, error_text(exc.code, exc.status))
    raw_findings = item["check"].get("findings", [])
    fields = _masked_fields(item["listing"], raw_findings)
    findings = [mask_finding(f) for f in raw_findings]
    rendered = [
        {
            "name": name,
            "label": label,
            "segments": segments(text, [(i, f) for i, f in enumerate(findings) if f["field"] == name]),
        }
        for name, label, text in fields
        if text
    ]
    item["title"] = mask_contacts(item.get("title") or "")
    for h in item.get("seller_history") or []:
        h["title"] = mask_contacts(h.get("title") or "")
    item["sla_state"] = sla_state(item)
    critical = item.get("max_severity") == "critical" or item["check"].get("verdict") == "block"
    return render(
        request,
        "item.html",
        actor,
        item=item,
        findings=findings,
        fields=rendered,
        machine=machine_suggestion(item, findings),
        critical=critical,
        held_by_me=item["claim_token"] is not None,
    )


class ViewIn(BaseModel):
    name: Text = Field(min_length=1, max_length=60)
    query: Text = Field(default="", max_length=1000)


@router.post("/review/views")
def save_view(
    body: ViewIn, request: Request, actor: Annotated[Actor, Depends(current_actor)]
) -> dict[str, str]:
    """Save the current filters under a name (per reviewer)."""
    request.app.state.accounts.save_view(actor.id, body.name, body.query)
    return {"status": "saved"}


@router.delete("/review/views/{view_id}")
def delete_view(
    view_id: Annotated[int, PathParam(ge=1, le=INT_MAX)],
    request: Request,
    actor: Annotated[Actor, Depends(current_actor)],
) -> dict[str, str]:
    request.app.state.accounts.delete_view(actor.id, view_id)
    return {"status": "deleted"}


@router.get("/review/stats", response_class=HTMLResponse)
def stats_page(request: Request) -> Response:
    actor = page_actor(request)
    if actor is None:
        return _login_redirect(request)
    if not actor.can("stats"):
        return error_page(request, actor, 403, "你的角色不能查看统计")
    queue = _queue(request)
    trends = None
    try:
        from moderation.queue.trends import reviewer_trends
    except ImportError:  # pragma: no cover - an older queue package
        reviewer_trends = None  # type: ignore[assignment]
    if reviewer_trends is not None:
        trends = reviewer_trends(queue.db, days=14)
    return render(request, "stats.html", actor, stats=queue.stats(24 * 7), trends=trends)


@router.get("/review/sellers/{seller_id}", response_class=HTMLResponse)
def seller_page(seller_id: str, request: Request) -> Response:
    """A seller's listings in the queue, their outcomes and the actions on the seller (hold, warn)."""
    actor = page_actor(request)
    if actor is None:
        return _login_redirect(request)
    if not seller_id or len(seller_id) > 200 or has_unstorable(seller_id):
        return error_page(request, actor, 404, "没有这个商家的记录")
    queue = _queue(request)
    page = queue.views.list_items(ItemFilter(status=None, seller=seller_id, sort="oldest"), limit=200)
    items = page["items"]
    for item in items:
        item["sla_state"] = sla_state(item)
        item["title"] = mask_contacts(item.get("title") or "")
    sellers = getattr(queue, "sellers", None)
    info = sellers.info(seller_id) if sellers is not None else None
    if not items and not (info and info.get("actions")):
        return error_page(request, actor, 404, f"没有商家 {seller_id} 的记录")
    counts: dict[str, int] = {}
    for item in items:
        key = item.get("outcome") or (
            "open" if item["status"] in ("pending", "claimed", "escalated") else item["status"]
        )
        counts[key] = counts.get(key, 0) + 1
    families: dict[str, int] = {}
    for item in items:
        for fam in item.get("families") or []:
            families[fam] = families.get(fam, 0) + 1
    return render(
        request,
        "seller.html",
        actor,
        seller_id=seller_id,
        items=list(reversed(items)),
        counts=counts,
        families=sorted(families.items(), key=lambda kv: -kv[1]),
        info=info,
        more=page["next_cursor"] is not None,
    )


@router.get("/static/check.js")
def check_js() -> Response:
    """The dependency-free client for listing editors (docs/editor.md); public, like any script."""
    return FileResponse(
        STATIC / "check.js",
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )


@router.get("/static/check.css")
def check_css() -> Response:
    return FileResponse(
        STATIC / "check.css",
        media_type="text/css; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )


@router.get("/editor", response_class=HTMLResponse)
def editor_page(request: Request) -> Response:
    """A demo listing editor: checks as the seller types, through /v1/check with this session."""
    actor = page_actor(request)
    if actor is None:
        return RedirectResponse("/review/login?" + urlencode({"next": "/editor"}), 303)
    return render(request, "editor.html", actor, categories=CATEGORIES)


@router.get("/review/{rest:path}", response_class=HTMLResponse)
def not_found_page(rest: str, request: Request) -> Response:
    """Anything else under /review: the console's static files, else a Chinese 404 page (this route is
    registered before the static mount, so it serves those files itself)."""
    if rest.startswith("static/"):
        path = (STATIC / rest.removeprefix("static/")).resolve()
        if path.is_file() and path.is_relative_to(STATIC):
            return FileResponse(path)
    return error_page(request, page_actor(request), 404, "页面不存在")
