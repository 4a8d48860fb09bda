"""Injection rules for languages other than English.

German, French, Spanish, Italian and Portuguese get the main categories (override, extraction,
persona, new task); Dutch, Polish, Russian, Croatian/Serbian/Bosnian, Turkish, Chinese and Japanese
get the override and extraction phrases, which carry most of the signal; Greek, Ukrainian, Arabic,
Hindi, Bengali, Thai, Korean, Vietnamese, Indonesian/Malay, Tagalog and Swahili get the override
phrase ("ignore the previous instructions"). Patterns are written the
way the folded view spells them: no accents (``instrucciónes`` -> ``instrucciones``), ``ß`` -> ``ss``.
"""

from __future__ import annotations

import unicodedata

from bastion.guard.injection_rules import (
    EXTRACTION,
    FORCED_OUTPUT,
    OVERRIDE,
    PIVOT,
    ROLE,
    InjectionRule,
    rule,
    substring_rule,
)

_DET = r"\W+(?:\w+\W+){0,4}?"  # up to four words between a verb and its object

_DE_OBJ = (
    r"(?:anweisungen|anweisung|instruktionen|befehle|regeln|vorgaben|richtlinien|aufgaben|auftrage|informationen"
    r"|angaben|prompts?|systemprompt|anordnungen|einschrankungen|ausfuhrungen|vorschriften)\b"
)

GERMAN_RULES: tuple[InjectionRule, ...] = (
    rule("de_override", OVERRIDE, 0.95,
         "vergiss|vergesst|vergessen sie|ignoriere|ignoriert|ignorieren sie|missachte|missachten sie|verwirf"
         "|verwerfen sie|losche|loschen sie|uberspringe|ubergehe|befolge nicht|befolgen sie nicht",
         _DET + _DE_OBJ),
    rule("de_override_everything", OVERRIDE, 0.9, "vergiss|vergesst|vergessen sie|ignoriere|ignorieren sie",
         r"\W+(?:einfach\W+|nun\W+|jetzt\W+)?alles\b(?!\W+(?:ausser|bis\W+auf))"),
    rule("de_everything_before", OVERRIDE, 0.85, "alles",
         r"\W+(?:davor|zuvor|vorher|bisherige|gesagte|oben|bisher\W+gesagte)\W+(?:vergessen|ignorieren)"),
    rule("de_object_first", OVERRIDE, 0.85,
         "obigen|vorherigen|bisherigen|vorangehenden|vorangegangenen|vorigen|fruheren|alten|alle",
         r"\W+(?:\w+\W+){0,2}(?:anweisungen|ausfuhrungen|instruktionen|informationen|angaben|aufgaben|befehle"
         r"|regeln)\W+(?:\w+\W+){0,6}(?:ignorieren|vergessen|missachten|streichen|loschen|hinter\W+sich|irrelevant"
         r"|ungultig|nicht\W+mehr\W+gultig|nicht\W+ganz\W+grossartig|unwichtig)\b"),
    rule("de_deviating", OVERRIDE, 0.85, "abweichend|entgegen|gegensatz|unabhangig",
         r"\W+(?:zu|von)?\W*(?:den\W+|deinen\W+|ihren\W+)?(?:vorherigen\W+|bisherigen\W+|obigen\W+)?"
         r"(?:instruktionen|anweisungen|regeln|vorgaben)\b"),
    rule("de_unremember", OVERRIDE, 0.8, "nicht an|nicht mehr an",
         r"\W+(?:die\W+dinge|alles|das)\W+(?:\w+\W+){0,6}erinnern\b"),
    rule("de_reveal", EXTRACTION, 0.9,
         "zeige|zeig|gib|nenne|verrate|wiederhole|drucke|schreibe|offenbare|vorzeigen|ausgabe|anzeigen"
         "|zeigen sie|geben sie|nennen sie|sag|sage|sagen sie",
         r"\W+(?:\w+\W+){0,4}?(?:system-?prompt|systemnachricht|prompt-?texte?|(?:deine|ihre|deinen|ihren)\W+"
         r"(?:(?:geheimen|versteckten|internen|ursprunglichen|vollstandigen)\W+)?(?:anweisungen|instruktionen|prompt"
         r"|regeln|vorgaben|systemanweisungen)|(?:den|die)\W+(?:text|anweisungen)\W+(?:oben|davor))\b"),
    rule("de_written_above", EXTRACTION, 0.85, "was steht|was stand|was wurde",
         r"\W+(?:\w+\W+){0,2}(?:oben|am\W+anfang|davor)\b"),
    rule("de_you_are_now", ROLE, 0.5,
         "du bist jetzt|du bist nun|du bist ab jetzt|du bist ab sofort|jetzt bist du|nun bist du"
         "|ab jetzt bist du|ab sofort bist du|von nun an bist du|ab jetzt wirst du|von nun an wirst du"
         "|ab jetzt sollst du|sie sind jetzt|sie sind nun", ""),
    rule("de_pretend", ROLE, 0.5, "tu so|tue so|tun sie so", r"\W*,?\W+als\W+(?:ob|waerst|warst|waren|seist)\b"),
    rule("de_imagine_evil", ROLE, 0.5, "stell dir vor",
         r"\W*,?\W+du\W+(?:bist|warst|waerst)\W+(?:eine?\W+)?(?:bose|boser|unzensiert|frei)"),
    rule("de_imagine", ROLE, 0.4, "stell dir vor|stellen sie sich vor",
         r"\W*,?\W+(?:du\W+bist|sie\W+sind|du\W+warst)\b"),
    rule("de_act_as", ROLE, 0.3, "ich mochte",
         r"\W*,?\W+dass\W+(?:sie|du)\W+als\W+(?:\w+\W+){1,6}(?:fungieren|fungierst|agieren|agierst|handeln"
         r"|handelst|auftreten|auftrittst)\b"),
    rule("de_stay_in_role", ROLE, 0.55, "bleib|bleibe|bleiben|bleibst",
         r"\W+(?:\w+\W+){0,2}in\W+(?:deiner|ihrer|seiner|der|ihren)\W+rollen?\b"),
    rule("de_out_of_role", ROLE, 0.55, "aus der rolle|aus der figur", r"\W+(?:zu\W+)?fallen"),
    rule("de_absorbed", ROLE, 0.55, "gehst", r"\W+(?:\w+\W+)?in\W+deiner\W+rolle\W+auf"),
    # "Antworte ab jetzt nur noch mit 'LOL'": every answer forced from now on ("antworte nur mit 'ja'
    # oder 'nein'" is a format, not matched).
    rule("de_just_say", FORCED_OUTPUT, 0.6,
         "antworte|antwortet|antworten sie|sag|sage|sagen sie|schreibe|schreib|schreiben sie|gib|geben sie",
         r"\W+(?:\w+\W+){0,3}?(?:nur\W+noch|ab\W+(?:jetzt|sofort)\W+nur|von\W+nun\W+an\W+nur|ausschlie\w*)\W+"
         r"(?:mit\W+)?(?:dem\W+(?:wort|satz)\W*)?(?:[\"'`«“„]|:)"),
    rule("de_new_tasks_follow", PIVOT, 0.75, "nun folgen|jetzt folgen",
         r"\W+(?:neue|weitere)\W+(?:aufgaben|anweisungen|instruktionen|befehle)\b"),
    rule("de_focus_new_task", PIVOT, 0.75, "konzentriere dich",
         r"\W+(?:\w+\W+){0,2}auf\W+(?:deine|die)\W+neue\W+aufgabe\b"),
    rule("de_your_new_task", PIVOT, 0.7, "deine neue aufgabe|ihre neue aufgabe", r"\W+(?:ist|lautet|besteht)\b"),
    rule("de_start_new_task", PIVOT, 0.7, "starten|beginnen", r"\W+(?:\w+\W+){0,3}mit\W+einer\W+neuen\W+aufgabe\b"),
    rule("de_praise_pivot", PIVOT, 0.3,
         "gut gemacht|sehr gut|ausgezeichnet|hervorragend|einfach grossartig|herzlichen gluckwunsch|fantastisch"
         "|toll gemacht|super gemacht",
         r"\W[^\n]{0,120}?\b(?:nun|jetzt|aber\W+jetzt)\b"),
    rule("de_enough_pivot", PIVOT, 0.5, "das genugt|das reicht|das ist erledigt|das war schon mal ok",
         r"\W[^\n]{0,60}?\b(?:nun|jetzt)\b"),
    rule("de_start_over", PIVOT, 0.4, "fangen sie|fang|beginnen sie|beginne", r"\W+(?:\w+\W+)?von\W+(?:vorne|neuem)\b"),
)  # fmt: skip

_FR_OBJ = r"(?:instructions?|consignes?|regles|directives|ordres|commandes|indications|taches|informations|prompt)\b"
_ES_OBJ = r"(?:instrucciones|indicaciones|reglas|ordenes|directrices|normas|comandos|tareas|directivas|prompt)\b"
_IT_OBJ = r"(?:istruzioni|indicazioni|regole|direttive|ordini|comandi|compiti|prompt)\b"
_PT_OBJ = r"(?:instrucoes|regras|ordens|diretrizes|comandos|tarefas|orientacoes|diretivas|prompt)\b"

ROMANCE_RULES: tuple[InjectionRule, ...] = (
    # French
    rule("fr_override", OVERRIDE, 0.95,
         "ignore|ignorez|ignorer|oublie|oubliez|oublier|tiens pas compte|tenez pas compte|fais abstraction"
         "|faites abstraction|neglige|negligez|efface|effacez|abandonne|abandonnez|contourne|contournez",
         _DET + _FR_OBJ),
    rule("fr_override_everything", OVERRIDE, 0.9, "oublie|oubliez|ignore|ignorez", r"\W+tout\b(?!\W+sauf)"),
    rule("fr_reveal", EXTRACTION, 0.9,
         "montre|montrez|affiche|affichez|revele|revelez|donne|donnez|repete|repetez|imprime|ecris|ecrivez|dis|dites",
         r"(?:-?moi|-?nous)?\W+(?:\w+\W+){0,3}?(?:ton|votre|le|tes|vos|les)\W+(?:prompt|instructions|consignes)"
         r"(?:\W+(?:systeme|initiales?|d'origine|cachees?))?\b"),
    rule("fr_role", ROLE, 0.5,
         "tu es maintenant|tu es desormais|tu es a present|vous etes maintenant|vous etes desormais"
         "|fais semblant|faites semblant", ""),
    rule("fr_from_now_on", ROLE, 0.5, "partir de maintenant|desormais|dorenavant",
         r"\W*,?\W+(?:tu|vous)\W+(?:es|etes|vas|allez|dois|devez)\b"),
    rule("fr_new_task", PIVOT, 0.7, "nouvelle tache", "", preceded_by=r"\b(?:ta|votre)\W+$"),
    rule("fr_new_instructions", PIVOT, 0.7, "nouvelles instructions|nouvelles consignes", r"\W*(?::|suivent)"),
    # Spanish
    rule("es_override", OVERRIDE, 0.95,
         "ignora|ignore|ignorar|ignoren|olvida|olvide|olvidar|olvidate|olviden|descarta|descarte|omite|omita"
         "|no hagas caso|haz caso omiso|desobedece",
         r"\W+(?:de\W+)?(?:\w+\W+){0,4}?" + _ES_OBJ),
    rule("es_override_everything", OVERRIDE, 0.9,
         "olvida|olvide|olvidar|olvidate|olviden|ignora|ignore|ignorar", r"\W+(?:de\W+)?todo\b(?!\W+excepto)"),
    rule("es_reveal", EXTRACTION, 0.9,
         "muestra|muestrame|muestre|revela|revelame|dime|repite|imprime|ensename|escribe",
         r"\W+(?:\w+\W+){0,3}?(?:tu|tus|el|las|su|sus)\W+(?:prompt|instrucciones)(?:\W+(?:del\W+sistema"
         r"|de\W+sistema|iniciales|originales|ocultas))?\b"),
    rule("es_role", ROLE, 0.5, "ahora eres|finge ser|finge que eres|haz como si fueras", ""),
    rule("es_from_now_on", ROLE, 0.5, "partir de ahora|desde ahora",
         r"\W*,?\W+(?:eres|seras|vas\W+a|debes|tu)\b"),
    rule("es_new_task", PIVOT, 0.7, "nueva tarea", "", preceded_by=r"\b(?:tu|su)\W+$"),
    rule("es_new_instructions", PIVOT, 0.7, "nuevas instrucciones", r"\W*(?::|siguen)"),
    # Italian
    rule("it_override", OVERRIDE, 0.95,
         "ignora|ignori|ignorate|dimentica|dimentichi|dimenticate|tralascia|trascura|non considerare"
         "|non tenere conto|scarta",
         r"\W+(?:di\W+|delle\W+)?(?:\w+\W+){0,4}?" + _IT_OBJ),
    rule("it_override_everything", OVERRIDE, 0.9, "dimentica|dimenticate|ignora|ignorate", r"\W+tutto\b(?!\W+tranne)"),
    rule("it_reveal", EXTRACTION, 0.9, "mostra|mostrami|rivela|rivelami|dimmi|ripeti|stampa|scrivi",
         r"\W+(?:\w+\W+){0,3}?(?:il\W+tuo|le\W+tue|il|le|i\W+tuoi)\W+(?:prompt|istruzioni)(?:\W+(?:di\W+sistema"
         r"|iniziali|originali|nascoste))?\b"),
    rule("it_role", ROLE, 0.5, "ora sei|adesso sei|fingi di essere|fai finta di essere", ""),
    rule("it_from_now_on", ROLE, 0.5, "ora in poi",
         r"\W*,?\W+(?:sei|tu\W+sei|dovrai|devi)\b"),
    rule("it_new_task", PIVOT, 0.7, "il tuo nuovo compito", ""),
    rule("it_new_instructions", PIVOT, 0.7, "nuove istruzioni", r"\W*(?::|seguono)"),
    # Portuguese
    rule("pt_override", OVERRIDE, 0.95,
         "ignore|ignora|ignorar|ignorem|esqueca|esquece|esquecer|esquecam|desconsidere|desconsidera|descarte"
         "|despreze|nao siga",
         r"\W+(?:de\W+)?(?:\w+\W+){0,4}?" + _PT_OBJ),
    rule("pt_override_everything", OVERRIDE, 0.9, "esqueca|esquece|esquecam|ignore|ignora", r"\W+tudo\b(?!\W+exceto)"),
    rule("pt_reveal", EXTRACTION, 0.9, "mostre|mostra|revele|revela|diga|diz|repita|repete|imprima|escreva",
         r"(?:-?me)?\W+(?:\w+\W+){0,3}?(?:o\W+seu|o\W+teu|seu|teu|o|as\W+suas|suas|as|os\W+seus)\W+(?:prompt"
         r"|instrucoes)(?:\W+(?:do\W+sistema|iniciais|originais|ocultas))?\b"),
    rule("pt_role", ROLE, 0.5, "agora voce e|agora tu es|finja ser|finja que e", ""),
    rule("pt_from_now_on", ROLE, 0.5, "partir de agora|agora em diante", r"\W*,?\W+(?:voce|tu)\b"),
    rule("pt_new_task", PIVOT, 0.7, "sua nova tarefa|tua nova tarefa", ""),
    rule("pt_new_instructions", PIVOT, 0.7, "novas instrucoes", r"\W*:"),
)  # fmt: skip

OTHER_RULES: tuple[InjectionRule, ...] = (
    rule("nl_override", OVERRIDE, 0.95, "negeer|vergeet",
         r"\W+(?:\w+\W+){0,3}?(?:instructies|regels|opdrachten|aanwijzingen)\b"),
    rule("nl_override_everything", OVERRIDE, 0.9, "vergeet alles", ""),
    rule("pl_override", OVERRIDE, 0.95, "zignoruj|ignoruj|zapomnij",
         r"\W+(?:o\W+)?(?:\w+\W+){0,3}?(?:instrukcje|instrukcjach|polecenia|poleceniach|zasady|wszystkim)\b"),
    rule("ru_override", OVERRIDE, 0.95, "игнорируи|игнорируите|проигнорируи|проигнорируите|забудь|забудьте",
         r"\W+(?:\w+\W+){0,3}?(?:инструкции|указания|правила|команды|все)"),
    rule("ru_reveal", EXTRACTION, 0.85, "покажи|выведи|раскрои|повтори",
         r"\W+(?:\w+\W+){0,2}?(?:системныи\W+промпт|промпт|инструкции)"),
    rule("ru_role", ROLE, 0.5, "теперь ты", ""),
    rule("sh_override", OVERRIDE, 0.95, "zaboravi|zaboravite|ignoriraj|ignorisi|ignorirajte",
         r"\W+(?:\w+\W+){0,3}?(?:instrukcije|upute|uputstva|naredbe|pravila|sve)\b"),
    rule("tr_override", OVERRIDE, 0.95, "onceki|tum|butun",
         r"\W+(?:\w+\W+)?talimatlar\w*\W+(?:unut|yok\W*say|gormezden\W+gel)"),
)  # fmt: skip

# Chinese and Japanese have no spaces between words, so these rules use substring triggers.
CJK_RULES: tuple[InjectionRule, ...] = (
    substring_rule("zh_override", OVERRIDE, 0.95, ("忽略", "无视", "忘记", "忘掉", "不要理会", "無視", "忘れ"),
                   r"(?:忽略|无视|忘记|忘掉|不要理会|無視|忘れ)(?:掉)?(?:之前|以上|上面|前面|所有|全部|先前|以前|これまで|前)?"
                   r"(?:的|の)?(?:所有|全部|すべての)?(?:指令|指示|说明|规则|提示|命令|設定|ルール)"),
    substring_rule("zh_reveal", EXTRACTION, 0.9,
                   ("显示", "输出", "告诉我", "重复", "打印", "泄露", "表示", "教えて", "出力"),
                   r"(?:显示|输出|告诉我|重复|打印|泄露|表示|教えて|出力)(?:你的|您的|你|の)?(?:系统提示|系统提示词|初始指令|提示词"
                   r"|システムプロンプト|プロンプト|指示)"),
)  # fmt: skip

# "Ignore / forget the (previous) instructions" in more languages. Scripts whose words carry combining
# signs or no spaces (Arabic prefixes, Indic, Thai, Korean particles, Japanese object-verb order) use
# substring rules; their patterns are NFKC-normalised as the folded view is (Thai "ำ" -> "ํา").
_VI_VERBS = "bo qua|phot lo|quen di|hay quen|khong can quan tam den|lo di"
_VI_OBJ = r"(?:huong\W+dan|chi\W+dan|chi\W+thi|menh\W+lenh|lenh|quy\W+tac|yeu\W+cau)"


def _nfkc(pattern: str) -> str:
    return unicodedata.normalize("NFKC", pattern)


def _override(name: str, verbs: str, objects: str, *, gap: int = 3, word_end: bool = True) -> InjectionRule:
    """A verb of ignoring, up to ``gap`` words, then an object meaning the instructions."""
    end = r"\b" if word_end else ""
    return rule(name, OVERRIDE, 0.9, verbs, rf"\W+(?:\w+\W+){{0,{gap}}}?(?:{objects}){end}")


MORE_LANGUAGE_RULES: tuple[InjectionRule, ...] = (
    _override("el_override", "αγνοησε|αγνοηστε|αγνοειστε|ξεχασε|ξεχαστε|παραβλεψε|παραβλεψτε",
              "οδηγιες|οδηγιων|οδηγια|εντολες|εντολων|κανονες|κανονων", word_end=False),
    _override("uk_override", "ігноруи|ігноруите|проігноруи|проігноруите|забудь|забудьте",
              "інструкціі|інструкції|вказівки|правила|команди", word_end=False),
    rule("vi_override", OVERRIDE, 0.9, _VI_VERBS,
         rf"\W+(?:(?:tat\W+ca|moi|toan\W+bo|cac|nhung|het)\W+){{1,3}}{_VI_OBJ}\b"),
    rule("vi_override_previous", OVERRIDE, 0.9, _VI_VERBS,
         rf"\W+(?:\w+\W+){{0,2}}?{_VI_OBJ}\W+(?:\w+\W+){{0,2}}?(?:truoc|tren|cu|ban\W+dau|he\W+thong)\b"),
    _override("id_override", "abaikan|lupakan|acuhkan|hiraukan|jangan ikuti|jangan hiraukan",
              "instruksi|perintah|petunjuk|arahan|aturan|panduan"),
    _override("tl_override", "huwag pansinin|balewalain|kalimutan|huwag sundin|isantabi",
              "tagubilin|instruksyon|utos|panuto|alituntunin|patakaran", gap=4),
    _override("sw_override", "puuza|sahau|usifuate", "maagizo|maelekezo|amri|sheria"),
    substring_rule("ar_override", OVERRIDE, 0.9, ("تجاهل", "انس", "أهمل", "اهمل"),
                   _nfkc(r"(?<!\w)و?(?:تجاهل\w*|انس[ىي]?|أهمل\w*|اهمل\w*)\W+(?:\w+\W+){0,3}?(?:ال)?"
                         r"(?:تعليمات|أوامر|اوامر|قواعد|إرشادات|ارشادات|توجيهات)")),
    substring_rule("hi_override", OVERRIDE, 0.9, ("निर्देश", "आदेश", "नियम", "हिदायत"),
                   _nfkc(r"(?:निर्देश|आदेश|नियम|हिदायत)\S*\s+(?:\S+\s+)?(?:को|की|का)\s+(?:\S+\s+)?"
                         r"(?:अनदेखा|अवहेलना|नज़रअंदाज़|नजरअंदाज|भूल\s+जा|भूल\s+जाइए|भूल\s+जाएं)")),
    substring_rule("bn_override", OVERRIDE, 0.9, ("নির্দেশ", "আদেশ", "নিয়ম"),
                   _nfkc(r"(?:নির্দেশ|আদেশ|নিয়ম)\S*\s+(?:\S+\s+)?(?:উপেক্ষা|অগ্রাহ্য|ভুলে\s+যা|এড়িয়ে)")),
    substring_rule("th_override", OVERRIDE, 0.9, ("ไม่ต้องสนใจ", "ไม่สนใจ", "เพิกเฉย", "ละเว้น", "ลืม"),
                   _nfkc(r"(?:ไม่ต้องสนใจ|ไม่สนใจ|เพิกเฉย|ละเว้น|ลืม)\S{0,12}?(?:คำสั่ง|คำแนะนำ|กฎ|ข้อกำหนด)")),
    substring_rule("ko_override", OVERRIDE, 0.9, ("지시", "지침", "명령", "규칙"),
                   r"(?:지시|지침|명령|규칙)\S{0,4}\s*(?:\S+\s+)?(?:무시|잊어|잊고|잊으)"),
    substring_rule("ja_override", OVERRIDE, 0.9, ("指示", "命令", "ルール", "指令"),
                   r"(?:指示|命令|ルール|指令)(?:を|は)(?:すべて|全部|全て)?(?:無視|忘れ)"),
)  # fmt: skip
