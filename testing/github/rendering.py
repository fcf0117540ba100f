"""Response bodies: complete JSON objects, as GitHub's OpenAPI description requires.

Clients such as githubkit validate every response they parse, so each object
carries every required field of its schema (the conformance tests check them
against the description).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import quote

from testing.github.world import (
    Account,
    App,
    Comment,
    Installation,
    Issue,
    Repository,
    Token,
    World,
    grants,
    iso,
)


def _node_id(kind: str, ident: int) -> str:
    return base64.b64encode(f"0{len(kind)}:{kind}{ident}".encode()).decode()


def _fake_sha(seed: str) -> str:
    return hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()


class Renderer:
    def __init__(self, world: World, base_url: str) -> None:
        self.world = world
        self.base = base_url
        self.host = base_url.split("://", 1)[1]

    def user(self, account: Account) -> dict[str, Any]:
        login = quote(account.login)  # "[bot]" must be escaped to be a valid URI
        api = f"{self.base}/users/{login}"
        html = (
            f"{self.base}/apps/{login.removesuffix('%5Bbot%5D')}"
            if account.type == "Bot"
            else f"{self.base}/{login}"
        )
        return {
            "login": account.login,
            "id": account.id,
            "node_id": _node_id(account.type, account.id),
            "avatar_url": f"{self.base}/avatars/u/{account.id}",
            "gravatar_id": "",
            "url": api,
            "html_url": html,
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": account.type,
            "user_view_type": "public",
            "site_admin": False,
        }

    def repo(
        self,
        repo: Repository,
        *,
        full: bool = False,
        token: Token | None = None,
    ) -> dict[str, Any]:
        """A "repository" object, or with ``full`` a "full-repository" object."""
        owner = self.world.accounts[repo.owner_id]
        full_name = self.world.full_name(repo)
        api = f"{self.base}/repos/{full_name}"
        html = f"{self.base}/{full_name}"
        settings = repo.settings
        body: dict[str, Any] = {
            "id": repo.id,
            "node_id": _node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": full_name,
            "owner": self.user(owner),
            "private": settings["private"],
            "html_url": html,
            "description": settings["description"],
            "fork": False,
            "url": api,
            "archive_url": f"{api}/{{archive_format}}{{/ref}}",
            "assignees_url": f"{api}/assignees{{/user}}",
            "blobs_url": f"{api}/git/blobs{{/sha}}",
            "branches_url": f"{api}/branches{{/branch}}",
            "collaborators_url": f"{api}/collaborators{{/collaborator}}",
            "comments_url": f"{api}/comments{{/number}}",
            "commits_url": f"{api}/commits{{/sha}}",
            "compare_url": f"{api}/compare/{{base}}...{{head}}",
            "contents_url": f"{api}/contents/{{+path}}",
            "contributors_url": f"{api}/contributors",
            "deployments_url": f"{api}/deployments",
            "downloads_url": f"{api}/downloads",
            "events_url": f"{api}/events",
            "forks_url": f"{api}/forks",
            "git_commits_url": f"{api}/git/commits{{/sha}}",
            "git_refs_url": f"{api}/git/refs{{/sha}}",
            "git_tags_url": f"{api}/git/tags{{/sha}}",
            "git_url": f"git://{self.host}/{full_name}.git",
            "issue_comment_url": f"{api}/issues/comments{{/number}}",
            "issue_events_url": f"{api}/issues/events{{/number}}",
            "issues_url": f"{api}/issues{{/number}}",
            "keys_url": f"{api}/keys{{/key_id}}",
            "labels_url": f"{api}/labels{{/name}}",
            "languages_url": f"{api}/languages",
            "merges_url": f"{api}/merges",
            "milestones_url": f"{api}/milestones{{/number}}",
            "notifications_url": f"{api}/notifications{{?since,all,participating}}",
            "pulls_url": f"{api}/pulls{{/number}}",
            "releases_url": f"{api}/releases{{/id}}",
            "ssh_url": f"git@{self.host}:{full_name}.git",
            "stargazers_url": f"{api}/stargazers",
            "statuses_url": f"{api}/statuses/{{sha}}",
            "subscribers_url": f"{api}/subscribers",
            "subscription_url": f"{api}/subscription",
            "tags_url": f"{api}/tags",
            "teams_url": f"{api}/teams",
            "trees_url": f"{api}/git/trees{{/sha}}",
            "clone_url": f"{html}.git",
            "mirror_url": None,
            "hooks_url": f"{api}/hooks",
            "svn_url": html,
            "homepage": settings["homepage"],
            "language": None,
            "forks": 0,
            "forks_count": 0,
            "stargazers_count": 0,
            "watchers": 0,
            "watchers_count": 0,
            "size": 0,
            "open_issues": self._open_issues(repo),
            "open_issues_count": self._open_issues(repo),
            "topics": [],
            "has_downloads": True,
            "has_pages": False,
            "disabled": False,
            "license": None,
            "pushed_at": iso(repo.pushed_at),
            "created_at": iso(repo.created_at),
            "updated_at": iso(repo.updated_at),
        }
        body.update(settings)
        if full:
            body["network_count"] = 0
            body["subscribers_count"] = 0
            body["organization"] = self.user(owner) if owner.type == "Organization" else None
            body["custom_properties"] = {}
        if token is not None:
            # What this token may do here, in the collaborator vocabulary.
            body["permissions"] = {
                "admin": grants(token.permissions, "administration", "write"),
                "maintain": False,
                "push": grants(token.permissions, "contents", "write"),
                "triage": grants(token.permissions, "issues", "write"),
                "pull": True,
            }
        return body

    def _open_issues(self, repo: Repository) -> int:
        return sum(
            1 for i in self.world.issues.values() if i.repo_id == repo.id and i.state == "open"
        )

    def app(self, app: App, *, with_installations_count: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": app.id,
            "slug": app.slug,
            "node_id": _node_id("Integration", app.id),
            "client_id": app.client_id,
            "owner": self.user(self.world.accounts[app.owner_id]),
            "name": app.name,
            "description": app.description,
            "external_url": app.external_url,
            "html_url": f"{self.base}/apps/{app.slug}",
            "created_at": iso(app.created_at),
            "updated_at": iso(app.updated_at),
            "permissions": app.permissions,
            "events": app.events,
        }
        if with_installations_count:
            body["installations_count"] = sum(
                1 for i in self.world.installations.values() if i.app_id == app.id
            )
        return body

    def app_credentials(self, app: App) -> dict[str, Any]:
        """The manifest-conversion shape: the App plus its secrets, shown once."""
        return {
            **self.app(app),
            "client_secret": app.client_secret,
            "webhook_secret": app.webhook_secret,
            "pem": app.private_key_pem,
        }

    def installation(self, installation: Installation) -> dict[str, Any]:
        account = self.world.accounts[installation.account_id]
        app = self.world.apps[installation.app_id]
        settings_path = (
            f"organizations/{account.login}/settings"
            if account.type == "Organization"
            else "settings"
        )
        suspended_by = (
            None
            if installation.suspended_by_id is None
            else self.user(self.world.accounts[installation.suspended_by_id])
        )
        return {
            "id": installation.id,
            "account": self.installation_account(account),
            "repository_selection": installation.repository_selection,
            "access_tokens_url": f"{self.base}/app/installations/{installation.id}/access_tokens",
            "repositories_url": f"{self.base}/installation/repositories",
            "html_url": f"{self.base}/{settings_path}/installations/{installation.id}",
            "app_id": app.id,
            "client_id": app.client_id,
            "app_slug": app.slug,
            "target_id": account.id,
            "target_type": account.type,
            "permissions": installation.permissions,
            "events": installation.events,
            "created_at": iso(installation.created_at),
            "updated_at": iso(installation.updated_at),
            "single_file_name": None,
            "has_multiple_single_files": False,
            "single_file_paths": [],
            "suspended_by": suspended_by,
            "suspended_at": iso(installation.suspended_at) if installation.suspended_at else None,
            "contact_email": None,
        }

    def installation_account(self, account: Account) -> dict[str, Any]:
        """An installation's account: a simple user that also has Enterprise's fields.

        The description types ``account`` in ``GET /app/installations`` as
        ``allOf: [Simple User, Enterprise]`` (elsewhere ``anyOf``), so a plain
        user object would not validate. Not used for App owners, whose
        ``oneOf`` must match exactly one of the two.
        """
        return {
            **self.user(account),
            "name": account.login,
            "slug": account.login.lower(),
            "created_at": iso(account.created_at),
            "updated_at": iso(account.created_at),
        }

    def token(self, value: str, token: Token) -> dict[str, Any]:
        body: dict[str, Any] = {
            "token": value,
            "expires_at": iso(token.expires_at),
            "permissions": token.permissions,
            "repository_selection": token.repository_selection,
        }
        if token.repository_selection == "selected":
            body["repositories"] = [
                self.repo(self.world.repos[r]) for r in sorted(self.world.token_repo_ids(token))
            ]
        return body

    def comment(self, comment: Comment) -> dict[str, Any]:
        repo = self.world.repos[comment.repo_id]
        full_name = self.world.full_name(repo)
        api = f"{self.base}/repos/{full_name}"
        app = None if comment.app_id is None else self.world.apps.get(comment.app_id)
        return {
            "id": comment.id,
            "node_id": _node_id("IssueComment", comment.id),
            "url": f"{api}/issues/comments/{comment.id}",
            "html_url": f"{self.base}/{full_name}/issues/{comment.issue_number}#issuecomment-{comment.id}",
            "body": comment.body,
            "user": self.user(self.world.accounts[comment.user_id]),
            "created_at": iso(comment.created_at),
            "updated_at": iso(comment.updated_at),
            "issue_url": f"{api}/issues/{comment.issue_number}",
            "author_association": "NONE",
            "performed_via_github_app": None if app is None else self.app(app),
            "reactions": {
                "url": f"{api}/issues/comments/{comment.id}/reactions",
                "total_count": 0,
                **dict.fromkeys(
                    ("+1", "-1", "laugh", "confused", "heart", "hooray", "eyes", "rocket"), 0
                ),
            },
        }

    def pull(self, repo: Repository, issue: Issue) -> dict[str, Any]:
        assert issue.head_ref is not None and issue.base_ref is not None
        owner = self.world.accounts[repo.owner_id]
        full_name = self.world.full_name(repo)
        api = f"{self.base}/repos/{full_name}"
        html = f"{self.base}/{full_name}/pull/{issue.number}"
        repo_body = self.repo(repo)
        head_sha = _fake_sha(f"{repo.id}:{issue.head_ref}")

        def side(ref: str) -> dict[str, Any]:
            return {
                "label": f"{owner.login}:{ref}",
                "ref": ref,
                "sha": _fake_sha(f"{repo.id}:{ref}"),
                "user": self.user(owner),
                "repo": repo_body,
            }

        links = {
            "self": f"{api}/pulls/{issue.number}",
            "html": html,
            "issue": f"{api}/issues/{issue.number}",
            "comments": f"{api}/issues/{issue.number}/comments",
            "review_comments": f"{api}/pulls/{issue.number}/comments",
            "review_comment": f"{api}/pulls/comments{{/number}}",
            "commits": f"{api}/pulls/{issue.number}/commits",
            "statuses": f"{api}/statuses/{head_sha}",
        }
        return {
            "url": links["self"],
            "id": issue.id,
            "node_id": _node_id("PullRequest", issue.id),
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": links["issue"],
            "commits_url": links["commits"],
            "review_comments_url": links["review_comments"],
            "review_comment_url": links["review_comment"],
            "comments_url": links["comments"],
            "statuses_url": links["statuses"],
            "number": issue.number,
            "state": issue.state,
            "locked": False,
            "title": issue.title,
            "user": self.user(self.world.accounts[issue.user_id]),
            "body": issue.body,
            "labels": [],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": iso(issue.created_at),
            "updated_at": iso(issue.updated_at),
            "closed_at": iso(issue.closed_at) if issue.closed_at else None,
            "merged_at": None,
            "merge_commit_sha": None,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": side(issue.head_ref),
            "base": side(issue.base_ref),
            "_links": {name: {"href": href} for name, href in links.items()},
            "author_association": "NONE",
            "auto_merge": None,
            "draft": False,
            "merged": False,
            "mergeable": True,
            "rebaseable": True,
            "mergeable_state": "clean",
            "merged_by": None,
            "comments": sum(
                1
                for c in self.world.comments.values()
                if c.repo_id == repo.id and c.issue_number == issue.number
            ),
            "review_comments": 0,
            "maintainer_can_modify": issue.maintainer_can_modify,
            "commits": 1,
            "additions": 0,
            "deletions": 0,
            "changed_files": 0,
        }
