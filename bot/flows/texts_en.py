"""What the bot says in English (/lang en), key for key beside bot/flows/texts_zh.py."""

EN: dict[str, str] = {
    "how_to_join": ("Hello! Please tap “Share my phone number” below, or scan the QR poster "
                    "your neighbor leader put up. What you sent is kept and reaches your "
                    "neighbor leader as soon as you join."),
    "share_phone": "Share my phone number",
    "kept_pending": "Saved. It goes to your neighbor leader as soon as you join.",
    "phone_not_found": ("No record for {phone}. Please scan your neighbor leader's QR poster "
                        "or ask them to register you. What you sent is kept."),
    "welcome_resident": ("Welcome, {name}! You joined {home}. Send text, photos, voice or a "
                         "location any time; your neighbor leader answers within 4 hours. "
                         "/my lists your reports."),
    "welcome_leader": ("Welcome, {name} ({roles}). New cases arrive here; use the buttons or "
                       "reply to a case message to answer. /cases /overdue /help"),
    "pending_routed": "{n} message(s) you sent before joining went to your neighbor leader.",
    "added": "Added to case #{case}. If this is a different problem, tap below.",
    "new_case_button": "This is a new problem",
    "split_done": "Filed as a separate case.",
    "ask_category": "To reach the right people faster, pick a category (optional):",
    "category_set": "Category noted: {category}",
    "emergency": ("[Urgent] Fire, gas leak, a fight or someone hurt? Call 119 (fire) / 110 "
                  "(police) / 120 (ambulance) now!"),
    "my_none": "You have not reported anything yet. Just send me text, a photo or voice.",
    "my_header": "Your reports:",
    "no_cases": "Nothing waiting.",
    "cases_header": "Open cases ({scope}):",
    "overdue_header": "Overdue cases ({scope}):",
    "prompt_reply": ("Type your answer to the resident (text, "
                     "photo or voice); /cancel to stop:"),
    "prompt_escalate": "Why does it go up a tier? /cancel to stop:",
    "prompt_ask_more": "What should the resident add? /cancel to stop:",
    "prompt_add": "Send the text, photo or voice to add; /cancel to stop:",
    "prompt_reject": "Why is it rejected? /cancel to stop:",
    "cancelled": "Cancelled.",
    "prompt_closed": "That step did not go through; the prompt is closed, and your next "
                     "message is handled as usual.",
    "prompt_closed_words": ("That step did not go through; the prompt is closed. What you "
                            "wrote was not sent; copy it if you need it:\n{words}"),
    "add_refiled": "{reason}. What you just sent is kept as a new report.",
    "done": "Done.",
    "accepted": "Case #{case} accepted.",
    "replied": "Your answer went to the resident (case #{case}).",
    "resolved": "Case #{case} marked resolved; waiting for the resident to confirm.",
    "escalated": "Case #{case} went up a tier.",
    "whistled": "Case #{case} was handed to the department.",
    "pick_whistle_category": "Pick the category before whistling:",
    "asked_more": "Asked the resident for more (case #{case}).",
    "rated": "Thank you! Case #{case} is closed.",
    "reopened": "Noted as not fixed; case #{case} is back with its holder.",
    "not_a_case_reply": "Reply to a case message to answer it, or send /cases.",
    "leader_free_text": "To answer a resident, reply to the case message; /cases lists them.",
    "stale": "{detail}",
    "denied": "Sorry. {detail}",
    "invalid": "Sorry. {detail}",
    "not_found": "Sorry. {detail}",
    "conflict": "{detail}",
    "busy": "Sorry, we are busy; your message is saved and will be handled.",
    "unknown_command": "Unknown command /{command}. /help lists what I understand.",
    "admin_only": "Sorry, /{command} is for admins.",
    "leaders_only": "Sorry, /{command} is for neighbor leaders and above.",
    "usage": "Usage: {usage}",
    "lang_set": "Switched to English.",
    "slow_down": "You are sending very fast; please wait a minute. Everything so far is kept.",
    "group_only_admin_bind": "Only an admin of that node may bind a chat.",
    "bound": "This chat is now bound to {node} ({tier}); case cards will appear here.",
    "unbound": "This chat is no longer bound.",
    "invite": "Invite link for {node}:\n{link}\nQR poster: {poster}",
    "help_resident": ("Send text, photos, voice, video or a location to report. "
                      "/my /mylz /lang zh"),
    "help_leader": "/cases /overdue /invite — reply to a case message to answer it.",
    "help_admin": ("/stats [code] /overdue [code] /case <id> /find <name|phone|code> "
                   "/assign <phone> <role> <code> /bind <code> /unbind /import /export "
                   "/invite <phone> (a personal invite) /revoke <code>"),
    "import_send_file": "Send me the nodes/members/categories CSV or XLSX files.",
    "import_ok": "Imported: {summary}",
    "import_failed": "Import rejected, nothing changed. Bad rows:\n{errors}",
    "export_ready": "Exported {nodes} nodes and {members} member rows.",
    "export_masked": ("Phones and addresses are partly hidden (a roster exported below town"
                      " level); this file cannot be imported."),
    "export_private_only": "/export holds personal data: use it in a private chat with me.",
    "phone_typed": ("Got your number. If it is a registered resident's, we ask their "
                    "neighbor leader to confirm it is you and tell you at once. Leaders and "
                    "admins: please use the personal invite your admin sent you."),
    "bind_ask": "{name} ({home}) wants to bind a {platform} account. Is it really them?",
    "bind_yes": "Yes",
    "bind_no": "No",
    "bind_done_yes": "Confirmed: {name}'s account is bound. Thank you!",
    "bind_done_no": "Noted: not {name}; nothing was bound. Thank you!",
    "bind_refused": "Your neighbor leader did not confirm this number is yours; not bound.",
    "bind_code_malformed": "Please send the invite as “bind ABCD-2345” (8 letters/digits).",
    "leader_needs_invite": ("This account was bound by a typed phone number and acts as a "
                            "resident only. Leaders and admins bind with their admin's "
                            "personal invite."),
    "login_needs_proof": ("Sorry, this chat account cannot sign in to the dashboard: it was "
                          "bound by a phone number or a poster. Ask your admin for a "
                          "personal invite, then send /login again."),
    "person_invite": ("Personal invite for {name} ({roles}), valid {days} days, once:\n"
                      "· WeChat/WeCom: send “bind {code}”\n· Telegram: {telegram}\n"
                      "· Web: {web}\n· QR: {qr}\nTo cancel: /revoke {code}"),
    "invite_revoked": "Invite {code} cancelled.",
    # --- wording ---
    # Domain errors by key (core/errors.py), and the words their parameters use.
    "login_too_many": "Too many attempts; please try again in {minutes} minute(s)",
    "dashboard_not_yours": ("The dashboard is only for village se"
                            "cretaries and town or district admins"),
    "login_link_invalid": ("This sign-in link is invalid, used or "
                           "expired; send /login in the chat again"),
    "password_too_short": "The password needs at least {least} characters",
    "password_refused": ("You can only set passwords of secretari"
                         "es or admins below you in your own area"),
    "login_wrong": "Wrong phone number or password",
    "session_expired": "Your session has expired; please sign in again",
    "phone_unknown": "Nobody has the phone number {phone}",
    "code_number_locked": ("Too many wrong codes for this number; "
                           "please try again in {minutes} minute(s)"),
    "code_sent_too_often": ("Codes were sent too often; please"
                            " try again in {minutes} minute(s)"),
    "web_code": ("Web chat code: {code} (valid for {minutes} mi"
                 "nute(s); ignore it if you did not ask for it)"),
    "code_locked": "Too many wrong codes; please ask for a new one in {minutes} minute(s)",
    "code_expired": "The code has expired; please ask for a new one",
    "code_client_locked": ("You typed too many wrong codes; ple"
                           "ase try again in {minutes} minute(s)"),
    "code_wrong": "Wrong code; {left} more tries",
    "case_not_found": "There is no case #{case}",
    "system": "the system",
    "local_time": "{day:02d}/{month:02d} {time}",
    "case_changed_by": ": {who} {did} at {when}",
    "case_changed": ("Case #{case} has changed{what}; it is now “{state}”."
                     " Nothing was done: please act on the latest message."),
    "case_state_forbids": "Case #{case} is now “{state}”: {doing} is not possible",
    "not_holder": ("You are not the holder of case #{case} no"
                   "r above them, so {doing} it is not for you"),
    "case_at_top": ("Case #{case} is already at the top tier and cannot go highe"
                    "r; whistle it to a department or ask an admin to reassign it"),
    "whistle_not_yours": ("Only a village secretary or a town or distr"
                          "ict admin can whistle a case to a department"),
    "whistle_needs_category": ("Please pick the category, so that "
                               "the right department takes the case"),
    "attachment_kind_unknown": "This kind of attachment is not supported: {kind}",
    "location_needs_coordinates": "A location needs a latitude and a longitude",
    "location_out_of_range": "The coordinates are out of range: {lat}, {lon}",
    "attachment_without_file": "The {kind} attachment has no file",
    "text_too_long": "The text is too long ({length} characters); please keep it under {most}",
    "text_required": "Please describe the problem in words",
    "report_for_outsider": "You can only report on behalf of residents in your own area",
    "nobody_to_take": ("Nobody above {home} can take cases yet"
                       "; please ask an admin to fill the posts"),
    "add_not_yours": "Case #{case} is not one you reported, so you cannot add to it",
    "add_case_ended": ("Case #{case} is finished; if the pro"
                       "blem remains, please report it again"),
    "merge_into_itself": "A case cannot be merged into itself",
    "merge_target_outside": "Case #{case} is outside your area, so you cannot merge into it",
    "reassign_admins_only": "Only an admin can reassign a case",
    "already_holder": "That person already holds the case",
    "no_post_here": "{name} holds no post in your area and cannot take the case",
    "rate_not_yours": "Only the resident who reported case #{case} can confirm or rate it",
    "stars_range": "Please rate from 1 to 5 stars",
    "category_case_ended": "Case #{case} is finished; its category cannot change",
    "category_not_yours": "You cannot change the category of case #{case}",
    "category_unknown": "Unknown category: {name} (choose from: {known})",
    "category_without_department": ("The category “{name}” names no depar"
                                    "tment, so the case cannot be whistled"),
    "department_missing": "{code} (does not exist)",
    "department_without_liaison": "{name} (no liaison)",
    "no_office_above": "This case is under no town or district, so no department can be found",
    "no_department": "No department can take the case: {tried}",
    "node_code_unknown": "no node with code {code!r}",
    "node_id_unknown": "no node with id {node}",
    "not_a_resident": "person {person} is not a registered resident",
    "person_unknown": "no person {person}",
    "invite_neighborhood_only": "Invite codes are made for a neighborhood (邻) only",
    "invite_not_yours": ("Only this neighborhood's leader or s"
                         'omeone above can make its invite code'),
    "invite_malformed": "This invite code is not valid",
    "export_format_unknown": "unknown export format {format!r} (csv or xlsx)",
    "export_sheet_full": "{kind} has more rows than one XLSX sheet holds; export as CSV",
    "identity_taken": "This chat account is already bound to someone else; ask an admin",
    "phone_malformed": "malformed phone {phone!r}",
    "phone_taken": "a person with this phone already exists",
    "role_unknown": "unknown role {role!r}",
    "appoint_refused": "{post}@{node} ({code}) {why}.",
    "role_not_on_level": "role {role} is held on a {where}, not on a {level}",
    "phone_nobody": "nobody with phone {phone}; import them first",
    "bind_not_yours": "only an admin of {code} may bind a chat to it",
    "bind_level": ("a chat cannot mirror a {level}; bind it to "
                   "a town, village, area, group or neighborhood"),
    "rebind_not_yours": ('This chat is bound to a node outside your'
                         " area; only that node's admins can move it"),
    "chat_not_bound": "this chat is not bound",
    "unbind_not_yours": "only an admin of the bound node may unbind this chat",
    "import_nothing": "nothing to import: name at least one file",
    "import_rejected": "Import rejected: {bad} bad row(s), nothing changed",
    "token_refreshing": "access token {key} is being refreshed elsewhere; try again",
    "outbox_recipient": "outbox message {key!r} needs exactly one recipient",
    "outbox_unknown": "no outbox message {message}",
    "age_malformed": "not an age: {text!r} (use days or weeks, e.g. 365d, 90d, 52w)",
    "age_too_short": "{text!r} is less than a day; purge keeps at least one day",
    "scope_outside": "is outside your area",
    "scope_too_high": ("is at your level or above; you can only"
                       " appoint or change posts below your own"),
    "scope_node": ("You can only change nodes below yours, not you"
                   "r own node, those above it or outside your area"),
    "row_node_refused": "node {code}: {why}",
    "row_category_refused": ("category {name}: categories are shared by the whole "
                             "city; only the operators change them from the console"),
    "row_post_refused": "{post}@{code} {why}",
    "name_or_accounts": "name or chat accounts",
    "name_only": "name",
    "row_person_refused": ("{phone} is outside your area or holds a post at your level or a"
                           "bove, so you cannot change their {what} (ask an admin above you)"),
    "photo_empty": "No picture arrived; please send it again",
    "photo_unreadable": "The picture could not be read; please take it again and send it",
    "photo_unsupported": ("This picture format is not supporte"
                          "d; please send a JPG or PNG picture"),
    "photo_damaged": "The picture is damaged or incomplete; please send it again",
    "photo_too_many_pixels": "The picture is too large to process",
    "photo_too_large": ("The picture is too large (over {limit}"
                        "); please compress it and send it again"),
    "voice_too_large": "The voice note is too long (over {limit}); please send it in parts",
    "video_too_large": "The video is too large (over {limit}); please shorten or compress it",
    "file_too_large": ("The file is too large (over {limit});"
                       " please compress it and send it again"),
    "media_empty": "Nothing arrived; please send it again",
    "voice_unreadable": "The voice note could not be read; please record it again",
    "video_unreadable": "The video could not be read; please film it again",
    "media_executable": ("For safety, programs are not accepted; p"
                         "lease send a picture, a PDF or a document"),
    "media_markup": ("Web pages and scripts are not accepted; p"
                     "lease send a picture, a PDF or a document"),
    "store_unavailable": ("The file cannot be saved right now "
                          "(our storage failed, not your file)"),
    "media_suffix_bad": "bad media suffix {suffix!r} (1-10 of a-z, 0-9)",
    "media_ref_bad": "not a usable media ref",
    "media_not_found": "no such media file",
    "list_sep": ", ",
    "list_sep_long": "; ",
    "list_none": "none",
    "verb.accept": "accepting",
    "verb.reply": "answering",
    "verb.ask_more": "asking the resident for more",
    "verb.resolve": "resolving",
    "verb.escalate": "escalating",
    "verb.whistle": "whistling",
    "verb.merge": "merging",
    "verb.merge_target": "merging into",
    "verb.reject": "rejecting",
    "verb.reassign": "reassigning",
    "verb.confirm": "confirming and rating",
    "verb.reopen": "reporting as not fixed",
    "state.open": "waiting",
    "state.accepted": "in progress",
    "state.resolved": "waiting for confirmation",
    "state.closed": "closed",
    "state.merged": "merged",
    "state.rejected": "rejected",
    "event.opened": "registered it",
    "event.added": "added details",
    "event.accepted": "accepted it",
    "event.reported_in": "reported in and accepted it",
    "event.replied": "answered the resident",
    "event.asked_more": "asked the resident for more",
    "event.resolved": "marked it resolved",
    "event.escalated": "passed it up a tier",
    "event.whistled": "whistled it to a department",
    "event.merged": "merged it into another case",
    "event.merged_in": "merged a duplicate into it",
    "event.rejected": "rejected it",
    "event.reassigned": "reassigned it",
    "event.confirmed": "confirmed and rated it",
    "event.reopened": "reported it not fixed",
    "event.auto_closed": "closed it unconfirmed",
    "event.overdue": "let it run overdue",
    "event.nagged": "sent a reminder",
    "event.categorized": "chose its category",
    "event.purged": "anonymised it",
    "role.secretary": "village secretary",
    "role.area_leader": "area leader",
    "role.group_leader": "group leader",
    "role.neighbor_leader": "neighbor leader",
    "role.resident": "resident",
    "role.department": "department liaison",
    "role.admin": "admin",
    "cmd_admin_only": "/{command} is for admins.",
    "cmd_leaders_only": "/{command} is for neighbor leaders and above.",
    "import_no_file": "No file to import arrived; please send the CSV or XLSX as a file",
    "node_outside": "{name} ({code}) is outside your area",
    "case_outside": "Case #{case} is outside your area",
    "bind_in_group": "Send /bind <code> in the group chat you want to bind",
    "merge_needs_target": "Please fill in the number of the case to merge into",
    "action_unknown": "There is no such action: {action}",
    "person_outside": "{name} is outside your area",
    "invite_unknown": ("This invite code is not valid; please check "
                       "it, or ask your admin for a new invite"),
    "invite_withdrawn": "This invite was withdrawn; please ask your admin for a new one",
    "invite_is_personal": ("This is a personal invite: send it "
                           "on its own, not with another invite"),
    "person_invite_admins_only": "Only admins can make personal invites",
    "person_invite_too_high": ("You cannot invite someone at your level "
                               "or above; please ask an admin above you"),
    "person_invite_nobody": "Nobody in your area has the phone number {phone}",
    "invite_not_found": "There is no such invite",
    "invite_not_personal": "This is not a personal invite",
    "invite_used": ("This invite was already used; each invite works "
                    "once. To bind again, please ask your admin"),
    "invite_expired": "This invite has expired; please ask your admin for a new one",
    "invite_account_in_use": ("Your account already joined by a poster and reported "
                              "problems; please ask your admin to merge the accounts"),
    "person_invite_private_only": ("Personal invites are made in a private chat "
                                   "with me only: send /invite <phone> there"),
    "binding_settled": "This binding request was already handled or has expired.",
    "binding_not_yours": "This resident is outside your care",
    # --- chatpage ---
    "mylz_how": "Send text, photos, voice or a location to report; your 邻长 answers soon.",
    "mylz_none": "You are not a registered resident yet: scan your 邻's QR poster to join.",
    "contact_card": "Printable contact card: {link}",
}
